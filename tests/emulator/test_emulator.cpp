// The CPU emulator that runs our CUDA kernel sources in CI must itself be right: barriers wait
// for the whole block, shuffles read the named lane, misuse is reported rather than hidden.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "kernels/cuda/launch.h"

namespace polytask::kernels::cuda {
namespace {

// Block sum in shared memory with a tree; correct only if __syncthreads waits for every thread.
__global__ void block_sum_kernel(const float* x, float* out) {
  __shared__ float partial[256];
  partial[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

// Without the barrier, the first and the last thread read slots the others have not written
// yet: in index order the first thread reads too early, in reverse order the last one does.
__global__ void missing_barrier_kernel(float* out) {
  __shared__ float slots[64];
  slots[threadIdx.x] = float(threadIdx.x + 1);
  if (threadIdx.x == 0 || threadIdx.x == 63) {
    float sum = 0;
    for (int i = 0; i < 64; ++i) sum += slots[i];
    out[threadIdx.x == 0 ? 0 : 1] = sum;
  }
}

__global__ void warp_sum_kernel(const float* x, float* out) {
  float v = x[threadIdx.x];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) out[threadIdx.x / 32] = v;
}

__global__ void xor_broadcast_kernel(int* out) {
  int v = int(threadIdx.x);
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, 1) + 100 * __shfl_sync(0xffffffffu, v, 3);
}

__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < 32) __syncthreads();
  out[threadIdx.x] = 1;
}

// Half a warp at a block barrier, the other half in a shuffle: hangs a GPU.
__global__ void mixed_barrier_kernel(float* out) {
  float v = 1;
  if (threadIdx.x < 16) __syncthreads();
  else v = __shfl_down_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

__global__ void index_kernel(int* out) {
  const unsigned block = blockIdx.x + gridDim.x * blockIdx.y;
  const unsigned thread = threadIdx.x + blockDim.x * threadIdx.y;
  out[block * blockDim.x * blockDim.y + thread] = int(block * 1000 + thread);
}

TEST(CudaEmulator, BarriersMakeBlockReductionsExact) {
  std::vector<float> x(4 * 256);
  std::iota(x.begin(), x.end(), 0.0f);
  std::vector<float> out(4, -1);
  launch("block sum", block_sum_kernel, dim3(4), dim3(256), 0, nullptr, x.data(), out.data());
  for (int b = 0; b < 4; ++b) {
    const double expected = std::accumulate(x.begin() + b * 256, x.begin() + (b + 1) * 256, 0.0);
    EXPECT_EQ(out[size_t(b)], float(expected)) << "block " << b;
  }
}

TEST(CudaEmulator, AMissingBarrierGivesWrongResults) {
  // Zero-initialised: static shared memory persists from launch to launch in the emulator.
  float out[2] = {0, 0};
  launch("missing barrier", missing_barrier_kernel, dim3(1), dim3(64), 0, nullptr, out);
  const float full = 64.0f * 65.0f / 2.0f;
  EXPECT_TRUE(out[0] != full || out[1] != full)
      << "one reader ran ahead of the writers, as it can on a GPU";
}

TEST(CudaEmulator, ShufflesReadTheNamedLane) {
  std::vector<float> x(64);
  std::iota(x.begin(), x.end(), 1.0f);
  std::vector<float> sums(2, -1);
  launch("warp sum", warp_sum_kernel, dim3(1), dim3(64), 0, nullptr, x.data(), sums.data());
  EXPECT_EQ(sums[0], 32.0f * 33.0f / 2.0f);
  EXPECT_EQ(sums[1], (64.0f * 65.0f - 32.0f * 33.0f) / 2.0f);

  std::vector<int> out(64, -1);
  launch("xor", xor_broadcast_kernel, dim3(1), dim3(64), 0, nullptr, out.data());
  for (int lane = 0; lane < 64; ++lane)
    EXPECT_EQ(out[size_t(lane)], (lane ^ 1) + 100 * (lane / 32 * 32 + 3)) << "thread " << lane;
}

TEST(CudaEmulator, IndicesCoverTheGrid) {
  std::vector<int> out(6 * 8 * 2, -1);
  launch("index", index_kernel, dim3(3, 2), dim3(8, 2), 0, nullptr, out.data());
  for (int block = 0; block < 6; ++block)
    for (int thread = 0; thread < 16; ++thread)
      EXPECT_EQ(out[size_t(block * 16 + thread)], block * 1000 + thread);
}

TEST(CudaEmulator, DivergentBarriersAreReportedNotHung) {
  std::vector<float> out(64);
  try {
    launch("divergent", divergent_barrier_kernel, dim3(1), dim3(64), 0, nullptr, out.data());
    // Threads 32..63 finish, so the barrier releases the first warp: legal on sm_70+.
    SUCCEED();
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
  }
}

TEST(CudaEmulator, ThreadsAtDifferentBarriersAreReported) {
  std::vector<float> out(32);
  try {
    launch("mixed barriers", mixed_barrier_kernel, dim3(1), dim3(32), 0, nullptr, out.data());
    FAIL() << "the emulator should report the deadlock";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mixed barriers: emulated kernel deadlocked"),
              std::string::npos) << e.what();
  }
  // The next launch starts clean.
  std::vector<float> x(256, 1.0f), sum(1);
  launch("block sum", block_sum_kernel, dim3(1), dim3(256), 0, nullptr, x.data(), sum.data());
  EXPECT_EQ(sum[0], 256.0f);
}

__global__ void add_one_kernel(float* x, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] += 1.0f;
}

TEST(CudaEmulator, CapturedGraphsRunAtEachLaunchNotAtCapture) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  std::vector<float> x(40, 5.0f);
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(x.data(), 0, x.size() * sizeof(float), stream), cudaSuccess);
  launch("add one", add_one_kernel, dim3(2), dim3(32), 0, stream, x.data(), 40);
  launch("add one", add_one_kernel, dim3(2), dim3(32), 0, stream, x.data(), 40);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  EXPECT_EQ(x, std::vector<float>(40, 5.0f)) << "capture records, it does not run";
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  EXPECT_EQ(x, std::vector<float>(40, 2.0f));
  x.assign(40, 7.0f);
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  EXPECT_EQ(x, std::vector<float>(40, 2.0f)) << "every launch replays the memset and both kernels";
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST(CudaEmulator, WaitingForTheDeviceWhileCapturingInvalidatesTheCapture) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaErrorStreamCaptureUnsupported);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(stream, &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess) << "outside a capture it is fine";
  (void)cudaGetLastError();  // the refusals are remembered, as on a GPU
  cudaStreamDestroy(stream);
}

TEST(CudaEmulator, BadLaunchConfigurationsFailNamingTheOp) {
  std::vector<float> out(1);
  try {
    launch("empty grid", block_sum_kernel, dim3(0), dim3(256), 0, nullptr, out.data(), out.data());
    FAIL() << "an empty grid must fail as it does on a GPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty grid"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("invalid configuration"), std::string::npos) << e.what();
  }
  EXPECT_THROW(launch("huge block", block_sum_kernel, dim3(1), dim3(2048), 0, nullptr, out.data(),
                      out.data()),
               Error);
}

}  // namespace
}  // namespace polytask::kernels::cuda
