// The emulator's pinned host memory and events (the "pinned host memory and events" block of
// kernels/cuda/emulator.h): copies into device memory from pageable host memory are counted,
// deferred stream work runs when an event or the stream is waited for, and an event recorded
// on a capturing stream belongs to the capture, as on a GPU.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cuda/emulator.h"

namespace polytask::kernels::cuda {
namespace {

// Stream work queues until something waits for it.
class DeferredExecution {
 public:
  DeferredExecution() { emulator::set_deferred_execution(true); }
  ~DeferredExecution() { emulator::set_deferred_execution(false); }
  DeferredExecution(const DeferredExecution&) = delete;
  DeferredExecution& operator=(const DeferredExecution&) = delete;
};

TEST(CudaEmulatorPinnedMemory, OnlyCopiesFromPageableMemoryToTheDeviceAreCounted) {
  int* device = nullptr;
  int* pinned = nullptr;
  ASSERT_EQ(cudaMalloc(&device, 4 * sizeof(int)), cudaSuccess);
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&pinned), 4 * sizeof(int)), cudaSuccess);
  std::vector<int> pageable = {1, 2, 3, 4};
  const int64_t before = emulator::pageable_async_copies();
  ASSERT_EQ(cudaMemcpyAsync(device, pinned, sizeof(int), cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(emulator::pageable_async_copies(), before) << "pinned to device";
  ASSERT_EQ(cudaMemcpyAsync(device + 1, device, sizeof(int), cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(emulator::pageable_async_copies(), before) << "device to device";
  ASSERT_EQ(cudaMemcpyAsync(pageable.data(), device, sizeof(int), cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(emulator::pageable_async_copies(), before) << "device to host";
  ASSERT_EQ(cudaMemcpyAsync(device + 2, pageable.data() + 2, sizeof(int), cudaMemcpyDefault),
            cudaSuccess);
  EXPECT_EQ(emulator::pageable_async_copies(), before + 1) << "pageable to device";
  ASSERT_EQ(cudaFreeHost(pinned), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(device, pageable.data(), sizeof(int), cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(emulator::pageable_async_copies(), before + 2)
      << "freed pinned memory's range is forgotten, so a later pageable copy is counted";
  EXPECT_EQ(cudaFreeHost(pageable.data()), cudaErrorInvalidValue) << "not pinned";
  ASSERT_EQ(cudaFree(device), cudaSuccess);
}

TEST(CudaEmulatorPinnedMemory, WaitingForAnEventRunsTheWorkQueuedBeforeItsRecord) {
  int* device = nullptr;
  int* pinned = nullptr;
  ASSERT_EQ(cudaMalloc(&device, 2 * sizeof(int)), cudaSuccess);
  ASSERT_EQ(cudaHostAlloc(reinterpret_cast<void**>(&pinned), 2 * sizeof(int), cudaHostAllocDefault),
            cudaSuccess);
  cudaEvent_t first = nullptr;
  ASSERT_EQ(cudaEventCreateWithFlags(&first, cudaEventDisableTiming), cudaSuccess);
  EXPECT_EQ(cudaEventQuery(first), cudaSuccess) << "an event never recorded is complete";
  int at_the_device[2] = {0, 0};
  {
    const DeferredExecution deferred;
    pinned[0] = 11;
    ASSERT_EQ(cudaMemcpyAsync(device, pinned, sizeof(int), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaEventRecord(first), cudaSuccess);
    pinned[1] = 22;
    ASSERT_EQ(cudaMemcpyAsync(device + 1, pinned + 1, sizeof(int), cudaMemcpyHostToDevice),
              cudaSuccess);
    EXPECT_EQ(cudaEventQuery(first), cudaErrorNotReady);
    EXPECT_EQ(emulator::pending_operations(), 2u);
    ASSERT_EQ(cudaEventSynchronize(first), cudaSuccess);
    EXPECT_EQ(cudaEventQuery(first), cudaSuccess);
    EXPECT_EQ(emulator::pending_operations(), 1u) << "only the work before the record ran";
    pinned[1] = 33;  // too early: the queued copy reads pinned memory when it runs
    ASSERT_EQ(cudaMemcpy(at_the_device, device, sizeof(at_the_device), cudaMemcpyDeviceToHost),
              cudaSuccess);
  }
  EXPECT_EQ(at_the_device[0], 11);
  EXPECT_EQ(at_the_device[1], 33);
  ASSERT_EQ(cudaEventDestroy(first), cudaSuccess);
  ASSERT_EQ(cudaFreeHost(pinned), cudaSuccess);
  ASSERT_EQ(cudaFree(device), cudaSuccess);
}

TEST(CudaEmulatorPinnedMemory, DeferredCopiesFromPageableMemoryTakeTheBytesAtTheCall) {
  int* device = nullptr;
  ASSERT_EQ(cudaMalloc(&device, sizeof(int)), cudaSuccess);
  int value = 5;
  int at_the_device = 0;
  {
    const DeferredExecution deferred;
    ASSERT_EQ(cudaMemcpyAsync(device, &value, sizeof(int), cudaMemcpyDefault), cudaSuccess);
    value = 6;  // a driver staged the 5 before the call returned
    ASSERT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);
    EXPECT_EQ(emulator::pending_operations(), 0u);
    ASSERT_EQ(cudaMemcpy(&at_the_device, device, sizeof(int), cudaMemcpyDeviceToHost), cudaSuccess);
  }
  EXPECT_EQ(at_the_device, 5);
  ASSERT_EQ(cudaFree(device), cudaSuccess);
}

TEST(CudaEmulatorPinnedMemory, AnEventRecordedWhileCapturingBelongsToTheCapture) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cudaEvent_t event = nullptr;
  ASSERT_EQ(cudaEventCreate(&event), cudaSuccess);
  std::vector<int> x(4, 1);
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(x.data(), 0, x.size() * sizeof(int), stream), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(event, stream), cudaSuccess);
  EXPECT_EQ(cudaEventQuery(event), cudaErrorCapturedEvent);
  EXPECT_EQ(cudaEventSynchronize(event), cudaErrorCapturedEvent);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess) << "recording is no refusal";
  EXPECT_EQ(cudaEventQuery(event), cudaErrorCapturedEvent) << "until recorded outside a capture";
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  EXPECT_EQ(x, std::vector<int>(4, 0)) << "the record added no node of its own";
  ASSERT_EQ(cudaEventRecord(event, stream), cudaSuccess);
  EXPECT_EQ(cudaEventSynchronize(event), cudaSuccess);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaEventDestroy(event);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace polytask::kernels::cuda
