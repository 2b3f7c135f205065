// The pinned staging ring that per-step values reach the device through
// (engine/host_staging.h): every upload arrives intact and in order however often the ring
// wraps, a host a whole ring ahead of the device waits instead of overwriting a slot a queued
// copy has yet to read, and nothing is staged inside a CUDA graph capture. Built against a GPU
// (skips without one) and against the CUDA emulator, whose deferred execution plays the queue
// a real host runs ahead of.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/cuda_graph.h"
#include "engine/host_staging.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test.h"

namespace polytask {
namespace {

struct Record {
  int32_t index, square, negative;
};

Record record(int32_t i) { return {i, i * i, -i}; }

// Uploads record(i) into row i of a device array of `count` records through `ring`, then
// reads the array back.
std::vector<int32_t> upload_records(HostStaging& ring, int32_t count) {
  Tensor device = Tensor::zeros({int64_t(count) * 3}, DType::I32, Device::CUDA);
  for (int32_t i = 0; i < count; ++i) {
    const Record r = record(i);
    ring.upload(device.data<int32_t>() + size_t(i) * 3, &r, sizeof(r), "a test record");
  }
  return device.to_vector<int32_t>();
}

void expect_records(const std::vector<int32_t>& got, int32_t count) {
  ASSERT_EQ(got.size(), size_t(count) * 3);
  for (int32_t i = 0; i < count; ++i) {
    const Record want = record(i);
    EXPECT_EQ(got[size_t(i) * 3], want.index) << "record " << i;
    EXPECT_EQ(got[size_t(i) * 3 + 1], want.square) << "record " << i;
    EXPECT_EQ(got[size_t(i) * 3 + 2], want.negative) << "record " << i;
  }
}

TEST(HostStaging, EveryUploadArrivesIntactAcrossManyLapsOfTheRing) {
  POLYTASK_REQUIRE_GPU();
  HostStaging ring(sizeof(Record), 4);
  expect_records(upload_records(ring, 403), 403);  // a hundred laps and then some
}

#if defined(POLYTASK_CUDA_EMULATION)
// Stream work queues until something waits for it, as on a GPU the host runs ahead of.
class DeferredExecution {
 public:
  DeferredExecution() { kernels::cuda::emulator::set_deferred_execution(true); }
  ~DeferredExecution() { kernels::cuda::emulator::set_deferred_execution(false); }
  DeferredExecution(const DeferredExecution&) = delete;
  DeferredExecution& operator=(const DeferredExecution&) = delete;
};

TEST(HostStaging, AHostAWholeRingAheadWaitsInsteadOfOverwriting) {
  HostStaging ring(sizeof(Record), 4);
  Tensor device = Tensor::zeros({10 * 3}, DType::I32, Device::CUDA);
  std::vector<int32_t> got;
  {
    const DeferredExecution deferred;
    for (int32_t i = 0; i < 10; ++i) {
      const Record r = record(i);
      ring.upload(device.data<int32_t>() + size_t(i) * 3, &r, sizeof(r), "a test record");
    }
    // Uploads 4-9 each found their slot's copy still queued and ran the queue up to it; the
    // last four copies are still queued, reading their slots.
    EXPECT_EQ(ring.waits(), 6);
    EXPECT_EQ(kernels::cuda::emulator::pending_operations(), 4u);
    got = device.to_vector<int32_t>();  // waits for the device: runs the queue
  }
  expect_records(got, 10);
}

TEST(HostStaging, AHostWithinARingOfTheDeviceNeverWaits) {
  HostStaging ring(sizeof(Record), 16);
  const DeferredExecution deferred;
  expect_records(upload_records(ring, 16), 16);
  EXPECT_EQ(ring.waits(), 0);
}
#endif

TEST(HostStaging, StagingInsideAGraphCaptureIsRefused) {
  POLYTASK_REQUIRE_GPU();
  HostStaging ring(sizeof(Record), 4);
  Tensor device = Tensor::zeros({3}, DType::I32, Device::CUDA);
  const Record r = record(7);
  try {
    CudaGraph graph("a test step", [&] {
      ring.upload(device.data<int32_t>(), &r, sizeof(r), "a test record");
    });
    FAIL() << "a capture recorded a copy from a staging slot";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a test record: staged while capturing a CUDA graph"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(capturing_cuda_graph());
  // The ring still works after the refused capture.
  ring.upload(device.data<int32_t>(), &r, sizeof(r), "a test record");
  EXPECT_EQ(device.to_vector<int32_t>(), (std::vector<int32_t>{7, 49, -7}));
}

TEST(HostStaging, AnUploadLargerThanASlotNamesItsSize) {
  POLYTASK_REQUIRE_GPU();
  HostStaging ring(8, 4);
  Tensor device = Tensor::zeros({3}, DType::I32, Device::CUDA);
  const Record r = record(1);
  try {
    ring.upload(device.data<int32_t>(), &r, sizeof(r), "a test record");
    FAIL() << "a 12-byte upload went into an 8-byte slot";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "a test record: 12 bytes do not fit a host staging slot of 8 bytes");
  }
}

}  // namespace
}  // namespace polytask
