#include "engine/device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/device_allocator.h"
#include "kernels/error.h"

#if defined(POLYTASK_WITH_CUDA)
#include "kernels/cuda/check.h"
#include "kernels/reduce.h"
#endif

namespace polytask {

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::CPU;
  if (text == "cuda") {
    if (!cuda_available()) fail("--device cuda: ", cuda_unavailable_reason());
    return Device::CUDA;
  }
  if (text == "auto") return cuda_available() ? Device::CUDA : Device::CPU;
  fail("unknown device '", text, "' (expected cpu, cuda or auto)");
}

#if defined(POLYTASK_WITH_CUDA)
std::string cuda_unavailable_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess)
    return cat("no usable CUDA device (", cudaGetErrorString(status), ")");
  if (count == 0) return "no CUDA device present";
  return "";
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
#else
std::string cuda_unavailable_reason() { return "this build of polytask has no CUDA support"; }
kernels::cuda::Stream cuda_stream() { fail("CUDA stream requested: ", cuda_unavailable_reason()); }
double* cuda_reduce_partials() { fail("CUDA workspace requested: ", cuda_unavailable_reason()); }
void cuda_synchronize() {}
#endif

bool cuda_available() {
  static const bool available = cuda_unavailable_reason().empty();
  return available;
}

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
  // The host reads what it copied out as soon as we return. A copy in from (pageable) host
  // memory is staged by the driver before cudaMemcpyAsync returns, so the host may reuse its
  // side at once and nothing waits: a training step stages its scalars this way.
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
