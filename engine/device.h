// Where tensors live, and the raw memory operations behind them. The CUDA half compiles only
// when the build found a CUDA toolkit (POLYTASK_WITH_CUDA); without one, asking for a device
// tensor throws a clear error instead of failing to build.
#pragma once

#include <cstddef>
#include <string>

#include "kernels/cuda/stream.h"
#include "kernels/precision.h"

namespace polytask {

enum class Device { CPU, CUDA };

const char* device_name(Device d);

// The start-up check of the GPU the engine would use (the current CUDA device): the build has
// CUDA, a device is present, its compute capability is 7.5 (Turing) or later, and this build's
// kernel image loads on it (an architecture it was compiled for, or PTX the driver compiles).
struct CudaCheck {
  bool device_present = false;  // a GPU answered, usable or not
  std::string problem;          // one line saying why CUDA cannot be used; empty when it can
};
// The check itself, asked anew each call (tests fake device properties under the emulator).
CudaCheck check_cuda();
// Its first answer, kept for the process: what cuda_available(), cuda_unavailable_reason() and
// parse_device() go by.
const CudaCheck& cuda_status();

// True when the check found nothing wrong.
bool cuda_available();
// check_cuda()'s problem, e.g. "no CUDA device present", "this polytask was built for sm_90;
// the GPU ... is sm_86: rebuild with -DCMAKE_CUDA_ARCHITECTURES=86"; empty when CUDA is usable.
// GPU tests print this when they skip.
std::string cuda_unavailable_reason();

// --device resolved against a check: "cpu"; "cuda" (fails with the check's problem when CUDA
// is not usable); "auto": CUDA when usable, else the CPU, and then, when a GPU is present but
// unusable, `note` says why in one line (the command prints it on stderr).
struct DeviceSelection {
  Device device = Device::CPU;
  std::string note;
};
DeviceSelection select_device(const std::string& text, const CudaCheck& cuda);
// select_device against cuda_status(), without the note.
Device parse_device(const std::string& text);

// Empty when `precision` can run on the current GPU, else one line saying why: TF32 and BF16
// need the tensor cores of compute capability 8.0 or later. Asked anew each call.
std::string tensor_core_problem(kernels::MathPrecision precision);

// The one stream all of the engine's CUDA work runs on, in order (created on first use).
// Copies to the host wait for it; kernels and device-side copies are queued on it.
kernels::cuda::Stream cuda_stream();
// The reduction workspace of the kernels that reduce on cuda_stream() (kernels/reduce.h):
// kernels::cuda::kReduceWorkspace doubles, allocated once; one serves every reduction because
// the stream runs them in order.
double* cuda_reduce_partials();
// Waits until every op queued on cuda_stream() has finished; kernel faults surface here.
void cuda_synchronize();
// The POLYTASK_CUDA_SYNC debug switch (kernels/cuda/launch.h): synchronise and check after every
// kernel launch. Always false in a build without CUDA.
bool cuda_sync_after_launch();

// Allocation and copies. Device memory comes from the caching allocator
// (engine/device_allocator.h); errors name the size asked for.
void* allocate_bytes(Device d, size_t bytes);
void free_bytes(Device d, void* p) noexcept;
// Copies to the host wait for the GPU. Copies from (pageable) host memory may wait too, so
// per-step values use engine/host_staging.h instead.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// How many device-to-host copies copy_bytes made so far: each one waits for the GPU, so tests
// count them to prove a training step makes none.
int64_t device_to_host_copies();
void zero_bytes(Device d, void* p, size_t bytes);

}  // namespace polytask
