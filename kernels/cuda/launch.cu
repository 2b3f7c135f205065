#include "kernels/cuda/launch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace polytask::kernels::cuda {

namespace {
std::atomic<bool>& sync_flag() {
  static std::atomic<bool> flag = [] {
    const char* env = std::getenv("POLYTASK_CUDA_SYNC");
    return env && std::strcmp(env, "0") != 0 && *env != '\0';
  }();
  return flag;
}
}  // namespace

bool sync_after_launch() { return sync_flag().load(std::memory_order_relaxed); }
void set_sync_after_launch(bool on) { sync_flag().store(on, std::memory_order_relaxed); }

namespace detail {

void launch_failed(const char* op, cudaError_t status, const char* when) {
  fail(op, ": CUDA kernel ", when, ": ", cudaGetErrorName(status), " (",
       cudaGetErrorString(status), ")");
}

namespace {
// A capturing stream runs nothing until its graph is launched, and a GPU refuses to
// synchronise it (which also invalidates the capture): a captured launch is only checked.
bool capturing(const char* op, Stream stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const cudaError_t asked = cudaStreamIsCapturing(stream, &status);
  if (asked != cudaSuccess) launch_failed(op, asked, "launch could not be checked");
  return status != cudaStreamCaptureStatusNone;
}
}  // namespace

void after_launch(const char* op, Stream stream) {
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess) launch_failed(op, launched, "launch failed");
  if (!sync_after_launch() || capturing(op, stream)) return;
  const cudaError_t ran = cudaStreamSynchronize(stream);
  if (ran != cudaSuccess) launch_failed(op, ran, "faulted (found by POLYTASK_CUDA_SYNC)");
}

}  // namespace detail
}  // namespace polytask::kernels::cuda
