// The emulator refuses during stream capture what a GPU refuses, with the same error codes, and
// invalidates the capture where the CUDA Programming Guide says a GPU does (the rules and their
// sources are in kernels/cuda/emulator.h); what a capture allows is recorded, not run.
#include <gtest/gtest.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/launch.h"

namespace polytask::kernels::cuda {
namespace {

__global__ void add_one_kernel(float* x, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] += 1.0f;
}

class EmulatorCapture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cudaStreamCreate(&blocking_), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&non_blocking_, cudaStreamNonBlocking), cudaSuccess);
  }
  void TearDown() override {
    cudaStreamDestroy(blocking_);
    cudaStreamDestroy(non_blocking_);
    (void)cudaGetLastError();  // a refused call is remembered; the next test starts clean
  }

  static cudaStreamCaptureStatus status_of(cudaStream_t stream) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    EXPECT_EQ(cudaStreamIsCapturing(stream, &status), cudaSuccess);
    return status;
  }
  // Ends the capture on `stream` and says whether it produced a graph (destroyed at once).
  static cudaError_t end(cudaStream_t stream) {
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    EXPECT_EQ(graph == nullptr, ended != cudaSuccess);
    cudaGraphDestroy(graph);
    return ended;
  }

  cudaStream_t blocking_ = nullptr;
  cudaStream_t non_blocking_ = nullptr;
};

TEST_F(EmulatorCapture, EveryStreamIsItsOwnAndOnlyTheCapturingOneRecords) {
  EXPECT_NE(blocking_, non_blocking_);
  cudaStream_t third = nullptr;
  ASSERT_EQ(cudaStreamCreate(&third), cudaSuccess);
  EXPECT_NE(third, blocking_);
  std::vector<float> a(8, 1.0f), b(8, 1.0f);
  ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(status_of(blocking_), cudaStreamCaptureStatusActive);
  EXPECT_EQ(status_of(third), cudaStreamCaptureStatusNone);
  ASSERT_EQ(cudaMemsetAsync(a.data(), 0, 8 * sizeof(float), blocking_), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(b.data(), 0, 8 * sizeof(float), third), cudaSuccess);
  EXPECT_EQ(a[0], 1.0f) << "recorded into the graph";
  EXPECT_EQ(b[0], 0.0f) << "another stream's work runs as it is queued";
  EXPECT_EQ(end(blocking_), cudaSuccess);
  EXPECT_EQ(status_of(blocking_), cudaStreamCaptureStatusNone);
  EXPECT_EQ(cudaStreamDestroy(third), cudaSuccess);
}

TEST_F(EmulatorCapture, LaunchesAndAsyncCopiesAndMemsetsAreRecordedAndReplayed) {
  std::vector<float> x(40, 5.0f), copy(40, -1.0f);
  ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(x.data(), 0, x.size() * sizeof(float), blocking_), cudaSuccess);
  launch("add one", add_one_kernel, dim3(2), dim3(32), 0, blocking_, x.data(), 40);
  ASSERT_EQ(cudaMemcpyAsync(copy.data(), x.data(), x.size() * sizeof(float),
                            cudaMemcpyDeviceToDevice, blocking_),
            cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(blocking_, &graph), cudaSuccess);
  EXPECT_EQ(x, std::vector<float>(40, 5.0f));
  EXPECT_EQ(copy, std::vector<float>(40, -1.0f));
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, blocking_), cudaSuccess);
  EXPECT_EQ(copy, std::vector<float>(40, 1.0f));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST_F(EmulatorCapture, SynchronisingOrQueryingTheCapturingStreamIsRefusedAndInvalidates) {
  for (auto* wait : {&cudaStreamSynchronize, &cudaStreamQuery}) {
    ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeRelaxed), cudaSuccess);
    EXPECT_EQ(wait(blocking_), cudaErrorStreamCaptureUnsupported) << "even Relaxed";
    EXPECT_EQ(cudaGetLastError(), cudaErrorStreamCaptureUnsupported) << "remembered";
    EXPECT_EQ(status_of(blocking_), cudaStreamCaptureStatusInvalidated);
    std::vector<float> x(4);
    EXPECT_EQ(cudaMemsetAsync(x.data(), 0, sizeof(float), blocking_),
              cudaErrorStreamCaptureInvalidated);
    EXPECT_EQ(end(blocking_), cudaErrorStreamCaptureInvalidated);
    EXPECT_EQ(wait(blocking_), cudaSuccess) << "outside a capture it is fine";
  }
}

TEST_F(EmulatorCapture, SynchronisingTheDeviceIsRefusedInEveryModeAndInvalidatesAllCaptures) {
  for (auto mode : {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal,
                    cudaStreamCaptureModeRelaxed}) {
    ASSERT_EQ(cudaStreamBeginCapture(blocking_, mode), cudaSuccess);
    ASSERT_EQ(cudaStreamBeginCapture(non_blocking_, mode), cudaSuccess);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorStreamCaptureUnsupported) << "mode " << mode;
    EXPECT_EQ(end(blocking_), cudaErrorStreamCaptureInvalidated);
    EXPECT_EQ(end(non_blocking_), cudaErrorStreamCaptureInvalidated);
  }
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

TEST_F(EmulatorCapture, TheLegacyStreamIsUnusableWhileABlockingStreamCaptures) {
  std::vector<float> x(64, 2.0f), y(64, 3.0f);
  const std::vector<std::function<cudaError_t()>> uses = {
      [&] { return cudaMemsetAsync(x.data(), 0, 4, nullptr); },
      [&] { return cudaMemcpyAsync(y.data(), x.data(), 4, cudaMemcpyDefault, cudaStreamLegacy); },
      [&] { return cudaStreamSynchronize(nullptr); },
      [&] { return cudaStreamQuery(nullptr); },
      [&] { return cudaMemcpy(y.data(), x.data(), 4, cudaMemcpyDefault); },
      [&] { return cudaMemset(x.data(), 0, 4); },
  };
  for (size_t use = 0; use < uses.size(); ++use) {
    ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeRelaxed), cudaSuccess);
    EXPECT_EQ(uses[use](), cudaErrorStreamCaptureImplicit) << "use " << use;
    EXPECT_EQ(end(blocking_), cudaErrorStreamCaptureInvalidated) << "use " << use;
  }
  EXPECT_EQ(x[0], 2.0f);
  EXPECT_EQ(y[0], 3.0f);

  ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeRelaxed), cudaSuccess);
  try {
    launch("add one", add_one_kernel, dim3(2), dim3(32), 0, nullptr, x.data(), 64);
    FAIL() << "a legacy-stream launch must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add one: CUDA kernel launch failed: "
                                         "cudaErrorStreamCaptureImplicit"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(end(blocking_), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(x[0], 2.0f) << "the refused kernel did not run";
}

TEST_F(EmulatorCapture, AskingTheLegacyStreamWhetherItCapturesIsRefusedButInvalidatesNothing) {
  ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeGlobal), cudaSuccess);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  EXPECT_EQ(cudaStreamIsCapturing(nullptr, &status), cudaErrorStreamCaptureImplicit);
  EXPECT_EQ(cudaStreamGetCaptureInfo(nullptr, &status), cudaErrorStreamCaptureImplicit);
  EXPECT_EQ(status_of(blocking_), cudaStreamCaptureStatusActive);
  EXPECT_EQ(end(blocking_), cudaSuccess);
}

TEST_F(EmulatorCapture, TheLegacyStreamRunsWhileOnlyANonBlockingStreamCaptures) {
  std::vector<float> x(4, 2.0f);
  ASSERT_EQ(cudaStreamBeginCapture(non_blocking_, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaMemsetAsync(x.data(), 0, sizeof(float), nullptr), cudaSuccess);
  EXPECT_EQ(x[0], 0.0f);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusActive;
  EXPECT_EQ(cudaStreamIsCapturing(nullptr, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusNone);
  EXPECT_EQ(end(non_blocking_), cudaSuccess);
}

// cudaMalloc, cudaFree and the synchronous copy and memset are "potentially unsafe": Global and
// ThreadLocal captures of this thread forbid them, Relaxed ones do not.
TEST_F(EmulatorCapture, CaptureModesDecideWhetherPotentiallyUnsafeCallsAreRefused) {
  std::vector<float> x(4, 2.0f), y(4, 3.0f);
  void* kept = nullptr;
  ASSERT_EQ(cudaMalloc(&kept, 64), cudaSuccess);
  const std::vector<std::function<cudaError_t()>> unsafe = {
      [] {
        void* p = nullptr;
        const cudaError_t status = cudaMalloc(&p, 64);
        if (status == cudaSuccess) cudaFree(p);
        return status;
      },
      [&] { return cudaFree(kept); },
      [&] { return cudaMemcpy(y.data(), x.data(), 4, cudaMemcpyDefault); },
      [&] { return cudaMemset(x.data(), 0, 4); },
  };
  for (size_t call = 0; call < unsafe.size(); ++call) {
    for (auto mode : {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal}) {
      ASSERT_EQ(cudaStreamBeginCapture(non_blocking_, mode), cudaSuccess);
      EXPECT_EQ(unsafe[call](), cudaErrorStreamCaptureUnsupported) << "call " << call;
      EXPECT_EQ(end(non_blocking_), cudaErrorStreamCaptureInvalidated) << "call " << call;
    }
  }
  EXPECT_EQ(x[0], 2.0f);
  EXPECT_EQ(y[0], 3.0f);
  for (size_t call = 0; call < unsafe.size(); ++call) {
    ASSERT_EQ(cudaStreamBeginCapture(non_blocking_, cudaStreamCaptureModeRelaxed), cudaSuccess);
    EXPECT_EQ(unsafe[call](), cudaSuccess) << "call " << call;
    EXPECT_EQ(end(non_blocking_), cudaSuccess) << "call " << call;
  }
  EXPECT_EQ(y[0], 2.0f);
}

// Another thread's capture forbids this thread's unsafe calls only when both are Global.
TEST_F(EmulatorCapture, AnotherThreadsGlobalCaptureForbidsUnsafeCallsHereUnlessThisThreadIsRelaxed) {
  for (auto other_mode : {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal}) {
    for (auto my_mode : {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeRelaxed}) {
      std::promise<void> begun, go;
      std::future<void> go_signal = go.get_future();
      cudaError_t ended = cudaSuccess;
      std::thread other([&] {
        EXPECT_EQ(cudaStreamBeginCapture(blocking_, other_mode), cudaSuccess);
        begun.set_value();
        go_signal.wait();
        ended = end(blocking_);
      });
      begun.get_future().wait();
      cudaStreamCaptureMode mode = my_mode;
      ASSERT_EQ(cudaThreadExchangeStreamCaptureMode(&mode), cudaSuccess);
      EXPECT_EQ(mode, cudaStreamCaptureModeGlobal) << "the default";
      void* p = nullptr;
      const cudaError_t allocated = cudaMalloc(&p, 16);
      if (allocated == cudaSuccess) cudaFree(p);
      ASSERT_EQ(cudaThreadExchangeStreamCaptureMode(&mode), cudaSuccess);
      EXPECT_EQ(mode, my_mode);
      go.set_value();
      other.join();
      const bool forbidden =
          other_mode == cudaStreamCaptureModeGlobal && my_mode == cudaStreamCaptureModeGlobal;
      EXPECT_EQ(allocated, forbidden ? cudaErrorStreamCaptureUnsupported : cudaSuccess)
          << "other " << other_mode << ", mine " << my_mode;
      EXPECT_EQ(ended, forbidden ? cudaErrorStreamCaptureInvalidated : cudaSuccess);
      (void)cudaGetLastError();
    }
  }
}

TEST_F(EmulatorCapture, BeginningAndEndingCapturesWhereTheyCannotBeIsRefused) {
  EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal),
            cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureMode(3)), cudaErrorInvalidValue);
  ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  unsigned long long id = 0;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  EXPECT_EQ(cudaStreamGetCaptureInfo(blocking_, &status, &id), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusActive);
  EXPECT_NE(id, 0u);

  EXPECT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeThreadLocal),
            cudaErrorIllegalState)
      << "no nested capture on one stream";
  EXPECT_EQ(end(non_blocking_), cudaErrorIllegalState) << "ended on another stream";
  EXPECT_EQ(end(nullptr), cudaErrorIllegalState);
  cudaError_t from_elsewhere = cudaSuccess;
  std::thread([&] { from_elsewhere = end(blocking_); }).join();
  EXPECT_EQ(from_elsewhere, cudaErrorStreamCaptureWrongThread);
  EXPECT_EQ(status_of(blocking_), cudaStreamCaptureStatusActive)
      << "none of these touches the capture";
  EXPECT_EQ(end(blocking_), cudaSuccess);

  // A Relaxed capture may be ended by another thread.
  ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeRelaxed), cudaSuccess);
  std::thread([&] { from_elsewhere = end(blocking_); }).join();
  EXPECT_EQ(from_elsewhere, cudaSuccess);
}

TEST_F(EmulatorCapture, ARefusedCallIsRememberedLikeAnyFailedRuntimeCall) {
  ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeGlobal), cudaSuccess);
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaPeekAtLastError(), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(end(blocking_), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(cudaGetLastError(), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// POLYTASK_CUDA_SYNC synchronises after each launch; a capturing stream cannot be synchronised,
// so a captured launch is only checked, and a bad one still names its op.
TEST_F(EmulatorCapture, TheSyncSwitchChecksCapturedLaunchesWithoutSynchronising) {
  const bool previous = sync_after_launch();
  set_sync_after_launch(true);
  std::vector<float> x(64, 1.0f);
  ASSERT_EQ(cudaStreamBeginCapture(blocking_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  std::string error;
  try {
    launch("add one", add_one_kernel, dim3(2), dim3(32), 0, blocking_, x.data(), 64);
    EXPECT_EQ(status_of(blocking_), cudaStreamCaptureStatusActive);
    launch("oversized add", add_one_kernel, dim3(1), dim3(2048), 0, blocking_, x.data(), 64);
  } catch (const Error& e) {
    error = e.what();
  }
  set_sync_after_launch(previous);
  EXPECT_EQ(error.rfind("oversized add: CUDA kernel launch failed: cudaErrorInvalidConfiguration",
                        0),
            0u)
      << error;
  EXPECT_EQ(end(blocking_), cudaSuccess) << "checking a launch does not invalidate the capture";
  EXPECT_EQ(x[0], 1.0f);
}

TEST(EmulatorCaptureErrors, HaveTheRuntimesNamesAndStrings) {
  EXPECT_STREQ(cudaGetErrorName(cudaErrorStreamCaptureImplicit), "cudaErrorStreamCaptureImplicit");
  EXPECT_STREQ(cudaGetErrorName(cudaErrorStreamCaptureWrongThread),
               "cudaErrorStreamCaptureWrongThread");
  EXPECT_STREQ(cudaGetErrorName(cudaErrorIllegalState), "cudaErrorIllegalState");
  EXPECT_STREQ(cudaGetErrorString(cudaErrorStreamCaptureImplicit),
               "operation would make the legacy stream depend on a capturing blocking stream");
}

}  // namespace
}  // namespace polytask::kernels::cuda
