#include "engine/device.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/device_allocator.h"
#include "kernels/error.h"

#if defined(POLYTASK_WITH_CUDA)
#include "kernels/cuda/check.h"
#include "kernels/cuda/sync_switch.h"
#include "kernels/cuda/kernel_image.h"
#include "kernels/reduce.h"
#endif

namespace polytask {

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

DeviceSelection select_device(const std::string& text, const CudaCheck& cuda) {
  if (text == "cpu") return {Device::CPU, ""};
  if (text == "cuda") {
    if (!cuda.problem.empty()) fail("--device cuda: ", cuda.problem);
    return {Device::CUDA, ""};
  }
  if (text == "auto") {
    if (cuda.problem.empty()) return {Device::CUDA, ""};
    // Without a GPU the CPU is the expected choice; a GPU we cannot use deserves a word.
    return {Device::CPU, cuda.device_present ? cat("--device auto uses the CPU: ", cuda.problem)
                                             : ""};
  }
  fail("unknown device '", text, "' (expected cpu, cuda or auto)");
}

const CudaCheck& cuda_status() {
  static const CudaCheck check = check_cuda();
  return check;
}

Device parse_device(const std::string& text) {
  return select_device(text, cuda_status()).device;
}
bool cuda_available() { return cuda_status().problem.empty(); }
std::string cuda_unavailable_reason() { return cuda_status().problem; }

#if defined(POLYTASK_WITH_CUDA)
namespace {
// The oldest GPUs the kernels are compiled for (sm_75, Turing), and the first with TF32/BF16
// tensor cores (sm_80, Ampere).
constexpr int kMinComputeCapability = 75;
constexpr int kTensorCoreComputeCapability = 80;

struct Gpu {
  std::string name;
  int major = 0, minor = 0;
  int compute_capability() const { return major * 10 + minor; }
};

std::string describe(cudaError_t status) {
  return cat(cudaGetErrorName(status), ": ", cudaGetErrorString(status));
}

// The current device's name and compute capability.
cudaError_t current_gpu(Gpu& gpu) {
  int device = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status != cudaSuccess) return status;
  cudaDeviceProp prop{};
  status = cudaGetDeviceProperties(&prop, device);
  if (status != cudaSuccess) return status;
  gpu.name = prop.name;
  gpu.major = prop.major;
  gpu.minor = prop.minor;
  return cudaSuccess;
}

// "75-real,80-real,90" (kernels::cuda::compiled_architectures) -> "sm_75, sm_80, sm_90".
std::string architecture_names(const std::string& list) {
  std::string names;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t end = std::min(list.find(',', start), list.size());
    std::string arch = list.substr(start, end - start);
    arch = arch.substr(0, arch.find('-'));  // 80-real, 90-virtual
    const bool number = !arch.empty() && arch.find_first_not_of("0123456789") == std::string::npos;
    if (!arch.empty()) names += cat(names.empty() ? "" : ", ", number ? "sm_" : "", arch);
    start = end + 1;
  }
  return names;
}
}  // namespace

CudaCheck check_cuda() {
  CudaCheck check;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    check.problem = cat("no usable CUDA device (", cudaGetErrorString(status), ")");
    return check;
  }
  if (count == 0) {
    check.problem = "no CUDA device present";
    return check;
  }
  check.device_present = true;
  Gpu gpu;
  if (const cudaError_t read = current_gpu(gpu); read != cudaSuccess) {
    check.problem = cat("cannot read the CUDA device's properties (", describe(read), ")");
    return check;
  }
  const int cc = gpu.compute_capability();
  if (cc < kMinComputeCapability) {
    check.problem = cat("the GPU ", gpu.name, " has compute capability ", gpu.major, ".", gpu.minor,
                        "; polytask needs 7.5 (Turing) or later");
    return check;
  }
  const cudaError_t image = kernels::cuda::kernel_image_status();
  if (image == cudaErrorNoKernelImageForDevice || image == cudaErrorInvalidDeviceFunction)
    check.problem = cat("this polytask was built for ",
                        architecture_names(kernels::cuda::compiled_architectures()), "; the GPU ",
                        gpu.name, " is sm_", cc, ": rebuild with -DCMAKE_CUDA_ARCHITECTURES=", cc);
  else if (image != cudaSuccess)
    check.problem = cat("polytask's kernels do not load on the GPU ", gpu.name, " (",
                        describe(image), ")");
  return check;
}

std::string tensor_core_problem(kernels::MathPrecision precision) {
  if (precision == kernels::MathPrecision::FP32) return "";
  Gpu gpu;
  if (const cudaError_t read = current_gpu(gpu); read != cudaSuccess)
    return cat("--precision ", kernels::precision_name(precision),
               ": cannot read the CUDA device's properties (", describe(read), ")");
  if (gpu.compute_capability() >= kTensorCoreComputeCapability) return "";
  return cat("--precision ", kernels::precision_name(precision),
             " needs a GPU of compute capability 8.0 or later (this one: ", gpu.name, ", ",
             gpu.major, ".", gpu.minor, ")");
}

kernels::cuda::Stream cuda_stream() {
  // A blocking stream: it also orders against the legacy default stream that vendor
  // libraries and tests use.
  static const kernels::cuda::Stream stream = [] {
    if (!cuda_available()) fail("CUDA stream requested: ", cuda_unavailable_reason());
    cudaStream_t s = nullptr;
    POLYTASK_CUDA_CHECK(cudaStreamCreate(&s));
    return s;
  }();
  return stream;
}

double* cuda_reduce_partials() {
  static double* const partials = static_cast<double*>(
      allocate_device(size_t(kernels::cuda::kReduceWorkspace) * sizeof(double)));
  return partials;
}

void cuda_synchronize() {
  const cudaError_t status = cudaStreamSynchronize(cuda_stream());
  if (status != cudaSuccess)
    fail("a CUDA kernel failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status),
         "); run with POLYTASK_CUDA_SYNC=1 to find the op");
}

bool cuda_sync_after_launch() { return kernels::cuda::sync_after_launch(); }
#else
CudaCheck check_cuda() { return {false, "this build of polytask has no CUDA support"}; }
std::string tensor_core_problem(kernels::MathPrecision precision) {
  if (precision == kernels::MathPrecision::FP32) return "";
  return cat("--precision ", kernels::precision_name(precision), ": ", cuda_unavailable_reason());
}
kernels::cuda::Stream cuda_stream() { fail("CUDA stream requested: ", cuda_unavailable_reason()); }
double* cuda_reduce_partials() { fail("CUDA workspace requested: ", cuda_unavailable_reason()); }
void cuda_synchronize() {}
bool cuda_sync_after_launch() { return false; }
#endif

namespace {
constexpr size_t kHostAlignment = 64;  // one cache line; also AVX-512 friendly

std::atomic<int64_t>& device_to_host_counter() {
  static std::atomic<int64_t> counter{0};
  return counter;
}

#if !defined(POLYTASK_WITH_CUDA)
[[noreturn]] void no_cuda() { fail("CUDA memory requested: ", cuda_unavailable_reason()); }
#endif
}  // namespace

int64_t device_to_host_copies() { return device_to_host_counter().load(std::memory_order_relaxed); }

void* allocate_bytes(Device d, size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (d == Device::CPU) {
    const size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
    void* p = std::aligned_alloc(kHostAlignment, rounded);
    if (!p) fail("out of host memory allocating ", bytes, " bytes");
    return p;
  }
  // Named the same way with and without CUDA support: the size asked for and why not.
#if defined(POLYTASK_WITH_CUDA)
  if (!cuda_available()) fail("cannot allocate ", bytes, " bytes on the GPU: ", cuda_unavailable_reason());
  return allocate_device(bytes);
#else
  fail("cannot allocate ", bytes, " bytes on the GPU: ", cuda_unavailable_reason());
#endif
}

void free_bytes(Device d, void* p) noexcept {
  if (!p) return;
  if (d == Device::CPU) {
    std::free(p);
    return;
  }
  release_device(p);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if defined(POLYTASK_WITH_CUDA)
  if (dst_device == Device::CPU) device_to_host_counter().fetch_add(1, std::memory_order_relaxed);
  POLYTASK_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cuda_stream()));
  // The host reads what it copied out as soon as we return. A copy in from pageable host
  // memory is safe to reuse at once (the driver copies it into a staging buffer before
  // cudaMemcpyAsync returns) but may wait: the driver may synchronise with the stream first.
  // So this path is for one-off uploads (data sets, parameters, an epoch's order); per-step
  // values go through the pinned ring of engine/host_staging.h, whose copies never wait.
  if (dst_device == Device::CPU) cuda_synchronize();
#else
  no_cuda();
#endif
}

void zero_bytes(Device d, void* p, size_t bytes) {
  if (d == Device::CPU) {
    std::memset(p, 0, bytes);
    return;
  }
#if defined(POLYTASK_WITH_CUDA)
  POLYTASK_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
#else
  no_cuda();
#endif
}

}  // namespace polytask
