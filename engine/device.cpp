#include "engine/device.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/cuda_check.h"
#include "kernels/error.h"

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
#else
std::string cuda_unavailable_reason() { return "this build of polytask has no CUDA support"; }
#endif

bool cuda_available() {
  static const bool available = cuda_unavailable_reason().empty();
  return available;
}

namespace {
constexpr size_t kHostAlignment = 64;  // one cache line; also AVX-512 friendly

#if !defined(POLYTASK_WITH_CUDA)
[[noreturn]] void no_cuda() { fail("CUDA memory requested: ", cuda_unavailable_reason()); }
#endif
}  // namespace

void* allocate_bytes(Device d, size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (d == Device::CPU) {
    const size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
    void* p = std::aligned_alloc(kHostAlignment, rounded);
    if (!p) fail("out of host memory allocating ", bytes, " bytes");
    return p;
  }
#if defined(POLYTASK_WITH_CUDA)
  if (!cuda_available()) fail("cannot allocate ", bytes, " bytes on the GPU: ", cuda_unavailable_reason());
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status != cudaSuccess)
    fail("out of device memory allocating ", bytes, " bytes (", cudaGetErrorString(status), ")");
  return p;
#else
  no_cuda();
#endif
}

void free_bytes(Device d, void* p) noexcept {
  if (!p) return;
  if (d == Device::CPU) {
    std::free(p);
    return;
  }
#if defined(POLYTASK_WITH_CUDA)
  cudaFree(p);  // errors here would be sticky errors already reported by the failing call
#endif
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if defined(POLYTASK_WITH_CUDA)
  POLYTASK_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
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
  POLYTASK_CUDA_CHECK(cudaMemset(p, 0, bytes));
#else
  no_cuda();
#endif
}

}  // namespace polytask
