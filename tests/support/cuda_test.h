// Helpers for tests of the CUDA kernels. Each tests/cuda/test_*.cpp is built twice: against the
// real kernels (runs on a GPU, skips with the reason without one) and against the same kernel
// sources compiled for the CPU emulator (POLYTASK_CUDA_EMULATION, always runs), so that kernel
// logic is checked in CI even though CI has no GPU.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/kernel_image.h"
#include "kernels/cuda/stream.h"

namespace polytask::testing {

#if defined(POLYTASK_CUDA_EMULATION)
inline constexpr bool kEmulated = true;
inline std::string gpu_unavailable_reason() { return ""; }
#else
inline constexpr bool kEmulated = false;
inline std::string gpu_unavailable_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error so later tests start clean
    return std::string("no usable CUDA device (") + cudaGetErrorString(status) + ")";
  }
  if (count == 0) return "no CUDA device present";
  // A GPU this build has no code for (the engine's start-up check refuses it the same way).
  if (const cudaError_t image = kernels::cuda::kernel_image_status(); image != cudaSuccess)
    return std::string("no kernel image for this GPU in this build (built for ") +
           kernels::cuda::compiled_architectures() + "): " + cudaGetErrorName(image);
  return "";
}
#endif

// Why the GPU cannot run the TF32/BF16 tensor-core kernels (compute capability below 8.0: the
// build has them for sm_80+ only, kernels/cuda/tensor_core.h), or "" when it can.
inline std::string tensor_cores_unavailable_reason() {
  if (const std::string reason = gpu_unavailable_reason(); !reason.empty()) return reason;
#if !defined(POLYTASK_CUDA_EMULATION)
  int device = 0, major = 0;
  POLYTASK_CUDA_CHECK(cudaGetDevice(&device));
  POLYTASK_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major < 8)
    return "the TF32/BF16 tensor-core kernels need compute capability 8.0 or later (this GPU: " +
           std::to_string(major) + ".x)";
#endif
  return "";
}

// Whether the workload-sized cases (batch 128 convolutions, pools and BatchNorm, the dense
// GEMMs, a 2048³ GEMM) shrink to the emulated build's sizes: always in emulation (the emulator
// pays ~1 µs per thread switch), and on a GPU when POLYTASK_TEST_SMALL is set to anything but
// "" or "0" — bench/gpu_check.sh sets it for the compute-sanitizer runs, which are 10-100x
// slower than plain ones. Odd shapes and the multi-turn reduction sizes never shrink: they are
// what memcheck is for. Unset (the default), a GPU runs the full shapes.
inline bool small_shapes() {
  if (kEmulated) return true;
  const char* value = std::getenv("POLYTASK_TEST_SMALL");
  return value != nullptr && *value != '\0' && std::string_view(value) != "0";
}

// Skips the current test, saying why, when no GPU can run it.
#define POLYTASK_REQUIRE_GPU()                                                         \
  do {                                                                                 \
    const std::string polytask_reason_ = ::polytask::testing::gpu_unavailable_reason(); \
    if (!polytask_reason_.empty()) GTEST_SKIP() << "GPU test skipped: " << polytask_reason_; \
  } while (0)

// Skips the current test, saying why, when the GPU cannot run the tensor-core kernels.
#define POLYTASK_REQUIRE_TENSOR_CORES()                                                           \
  do {                                                                                            \
    const std::string polytask_reason_ = ::polytask::testing::tensor_cores_unavailable_reason(); \
    if (!polytask_reason_.empty()) GTEST_SKIP() << "tensor-core test skipped: " << polytask_reason_; \
  } while (0)

// A device array for tests: upload, poison, download. Poisoning sets every byte to 0xFF, which
// is a NaN for float and double and -1 for integers, so unwritten outputs show.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t count) : count_(count) {
    POLYTASK_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), bytes()));
    poison();
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return data_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ ? count_ * sizeof(T) : 1; }

  void upload(const std::vector<T>& host) {
    if (host.size() != count_) throw std::runtime_error("DeviceArray::upload: size mismatch");
    if (count_) POLYTASK_CUDA_CHECK(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  void poison() { POLYTASK_CUDA_CHECK(cudaMemset(data_, 0xFF, bytes())); }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    POLYTASK_CUDA_CHECK(cudaDeviceSynchronize());
    if (count_) POLYTASK_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  size_t count_;
  T* data_ = nullptr;
};

// The default stream; kernels take an explicit stream, tests use this one.
inline kernels::cuda::Stream test_stream() { return nullptr; }

}  // namespace polytask::testing
