// Tensor: allocation, views and batch slices sharing storage, copies, dtype checks, and the
// CUDA round trip (skipped with a reason when no device is present).
#include "engine/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

using testing::contains;
using testing::error_message;

TEST(Tensor, DefaultIsUndefined) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.raw(), nullptr);
}

TEST(Tensor, EmptyHasShapeDtypeDeviceAndBytes) {
  const Tensor t = Tensor::empty({3, 4, 5}, DType::F64);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.shape(), (Shape{3, 4, 5}));
  EXPECT_EQ(t.numel(), 60);
  EXPECT_EQ(t.dim(0), 3);
  EXPECT_EQ(t.dim(2), 5);
  EXPECT_EQ(t.dtype(), DType::F64);
  EXPECT_EQ(t.device(), Device::CPU);
  EXPECT_EQ(t.bytes(), 60u * 8u);
  EXPECT_NE(t.raw(), nullptr);
  EXPECT_EQ(Tensor::empty({7}, DType::F32).bytes(), 28u);
  EXPECT_EQ(Tensor::empty({7}, DType::I32).bytes(), 28u);
}

TEST(Tensor, ZeroSizedTensorIsDefined) {
  const Tensor t = Tensor::zeros({0, 3});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.to_vector<float>().empty());
}

TEST(Tensor, NegativeShapeThrows) {
  EXPECT_THROW(Tensor::empty({2, -1}), Error);
}

// Sizes from flags, configs and file headers: a count past int64_t is refused naming the
// shape, never wrapped into a small buffer that later code overruns.
TEST(Tensor, HugeShapesAreRefusedNotWrapped) {
  const Shape batch_of_images = Shape{1, 28, 28}.with_batch(4611686018427387904);  // 2^62
  EXPECT_TRUE(contains(error_message([&] { (void)batch_of_images.numel(); }),
                       "shape (4611686018427387904, 1, 28, 28) has too many elements"));
  EXPECT_TRUE(contains(error_message([&] { (void)Tensor::empty(batch_of_images); }),
                       "too many elements"));
  const Shape widest = Shape{1}.with_batch(INT64_MAX);  // the count fits, its bytes do not
  EXPECT_EQ(widest.numel(), INT64_MAX);
  EXPECT_TRUE(contains(error_message([&] { (void)Tensor::empty(widest, DType::F32); }),
                       "size in bytes exceeds"));
  EXPECT_TRUE(contains(error_message([&] { (void)Tensor::empty({4000000000000000000, 4000}); }),
                       "(4000000000000000000, 4000) has too many elements"));
}

TEST(Tensor, ZerosAreZeroForEveryDtype) {
  for (DType dt : {DType::F32, DType::F64, DType::I32}) {
    const Tensor t = Tensor::zeros({5, 3}, dt);
    for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.item(i), 0.0) << dtype_name(dt) << " " << i;
  }
}

TEST(Tensor, FromVectorToVectorRoundTrip) {
  const std::vector<double> d{1.5, -2.25, 3.0, 4.0, 5.0, 6.125};
  const Tensor td = Tensor::from_vector<double>({2, 3}, d);
  EXPECT_EQ(td.dtype(), DType::F64);
  EXPECT_EQ(td.to_vector<double>(), d);
  EXPECT_EQ(td.item(1), -2.25);

  const std::vector<float> f{0.5f, 1.5f, -3.0f};
  EXPECT_EQ(Tensor::from_vector<float>({3}, f).to_vector<float>(), f);

  const std::vector<int32_t> i{7, -1, 0, 42};
  const Tensor ti = Tensor::from_vector<int32_t>({4}, i);
  EXPECT_EQ(ti.dtype(), DType::I32);
  EXPECT_EQ(ti.to_vector<int32_t>(), i);
  EXPECT_EQ(ti.item(3), 42.0);
}

TEST(Tensor, FromVectorWithWrongCountThrows) {
  const std::string message =
      error_message([] { Tensor::from_vector<double>({2, 3}, std::vector<double>(5, 0.0)); });
  EXPECT_TRUE(contains(message, "(2, 3)"));
}

TEST(Tensor, FillAndZero) {
  Tensor t = Tensor::empty({4}, DType::F32);
  t.fill(2.5);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{2.5f, 2.5f, 2.5f, 2.5f}));
  t.zero();
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 0, 0, 0}));
  Tensor i = Tensor::empty({2}, DType::I32);
  i.fill(3);
  EXPECT_EQ(i.to_vector<int32_t>(), (std::vector<int32_t>{3, 3}));
}

TEST(Tensor, ItemOutOfRangeThrows) {
  const Tensor t = Tensor::zeros({3});
  EXPECT_THROW(t.item(3), Error);
  EXPECT_THROW(t.item(-1), Error);
}

TEST(Tensor, ViewSharesStorage) {
  const Tensor t = Tensor::from_vector<double>({2, 3}, {0, 1, 2, 3, 4, 5});
  const Tensor v = t.view({3, 2});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  EXPECT_EQ(v.raw(), t.raw());
  v.data<double>()[5] = 50;
  EXPECT_EQ(t.item(5), 50.0);
  const Tensor flat = t.view({6});
  EXPECT_EQ(flat.to_vector<double>(), (std::vector<double>{0, 1, 2, 3, 4, 50}));
}

TEST(Tensor, ViewWithWrongElementCountThrows) {
  const Tensor t = Tensor::zeros({2, 3}, DType::F64);
  const std::string message = error_message([&] { (void)t.view({4, 2}); });
  EXPECT_TRUE(contains(message, "(4, 2)"));
  EXPECT_TRUE(contains(message, "(2, 3)"));  // describe() of the source tensor
}

TEST(Tensor, SliceSelectsBatchRowsAndSharesStorage) {
  std::vector<int32_t> values(4 * 3);
  for (size_t i = 0; i < values.size(); ++i) values[i] = int32_t(i);
  const Tensor t = Tensor::from_vector<int32_t>({4, 3}, values);
  const Tensor rows = t.slice(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 3}));
  EXPECT_EQ(rows.to_vector<int32_t>(), (std::vector<int32_t>{3, 4, 5, 6, 7, 8}));
  rows.data<int32_t>()[0] = -3;
  EXPECT_EQ(t.item(3), -3.0);
  // A slice of a slice keeps the offset.
  EXPECT_EQ(rows.slice(1, 2).to_vector<int32_t>(), (std::vector<int32_t>{6, 7, 8}));
  // An empty slice at the end is valid.
  EXPECT_EQ(t.slice(4, 4).numel(), 0);
  // Slicing a rank-3 batch keeps the per-sample shape.
  const Tensor img = Tensor::zeros({5, 2, 3, 4}, DType::F64);
  EXPECT_EQ(img.slice(2, 5).shape(), (Shape{3, 2, 3, 4}));
  EXPECT_EQ(static_cast<char*>(img.slice(2, 5).raw()) - static_cast<char*>(img.raw()),
            2 * 24 * 8);
}

TEST(Tensor, SliceOutOfRangeThrows) {
  const Tensor t = Tensor::zeros({4, 3});
  EXPECT_THROW(t.slice(0, 5), Error);
  EXPECT_THROW(t.slice(-1, 2), Error);
  EXPECT_THROW(t.slice(3, 2), Error);
  EXPECT_THROW(Tensor::zeros(Shape{}).slice(0, 0), Error);
  EXPECT_TRUE(contains(error_message([&] { (void)t.slice(2, 9); }), "[2, 9)"));
}

TEST(Tensor, CopyFromSameDeviceCopiesAndKeepsStorageSeparate) {
  const Tensor src = Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4});
  Tensor dst = Tensor::zeros({2, 2});
  dst.copy_from(src);
  EXPECT_EQ(dst.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  src.data<float>()[0] = 9;
  EXPECT_EQ(dst.item(0), 1.0);
  // Into a slice of a larger tensor.
  Tensor big = Tensor::zeros({3, 2});
  big.slice(1, 2).copy_from(Tensor::from_vector<float>({1, 2}, {5, 6}));
  EXPECT_EQ(big.to_vector<float>(), (std::vector<float>{0, 0, 5, 6, 0, 0}));
}

TEST(Tensor, CopyFromMismatchThrows) {
  Tensor dst = Tensor::zeros({2, 2});
  EXPECT_THROW(dst.copy_from(Tensor::zeros({4})), Error);               // shape
  EXPECT_THROW(dst.copy_from(Tensor::zeros({2, 2}, DType::F64)), Error);  // dtype
}

TEST(Tensor, ToSameDeviceReturnsTheSameStorage) {
  const Tensor t = Tensor::zeros({3});
  EXPECT_EQ(t.to(Device::CPU).raw(), t.raw());
}

TEST(Tensor, DtypeMismatchAccessThrows) {
  const Tensor t = Tensor::zeros({3}, DType::F32);
  const std::string message = error_message([&] { (void)t.data<double>(); });
  EXPECT_TRUE(contains(message, "f32"));
  EXPECT_TRUE(contains(message, "f64"));
  EXPECT_THROW((void)t.data<int32_t>(), Error);
  EXPECT_THROW((void)t.to_vector<double>(), Error);
  EXPECT_NO_THROW((void)t.data<float>());
}

TEST(Tensor, Describe) {
  EXPECT_EQ(Tensor::empty({128, 10}).describe(), "f32 (128, 10) on cpu");
  EXPECT_EQ(Tensor::empty({3}, DType::I32).describe(), "i32 (3,) on cpu");
  EXPECT_EQ(Tensor::empty({1, 2, 3}, DType::F64).describe(), "f64 (1, 2, 3) on cpu");
}

TEST(Tensor, CheckShapeNamesOpAndShapes) {
  const Tensor t = Tensor::zeros({2, 3});
  EXPECT_NO_THROW(check_shape("op", "x", t, {2, 3}));
  const std::string message = error_message([&] { check_shape("dense forward", "x", t, {2, 4}); });
  EXPECT_TRUE(contains(message, "dense forward: expected x of shape (2, 4), got (2, 3)"));
}

TEST(Shape, StrWithBatchAndSample) {
  const Shape s{3, 28, 28};
  EXPECT_EQ(s.str(), "(3, 28, 28)");
  EXPECT_EQ(Shape{10}.str(), "(10,)");
  EXPECT_EQ(Shape{}.str(), "()");
  EXPECT_EQ(s.with_batch(4), (Shape{4, 3, 28, 28}));
  EXPECT_EQ(s.with_batch(4).sample(), s);
  EXPECT_EQ(s.numel(), 3 * 28 * 28);
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_THROW((Shape{1, 2, 3, 4, 5, 6, 7}), Error);
}

TEST(TensorCuda, HostDeviceHostRoundTrip) {
  if (!cuda_available()) GTEST_SKIP() << cuda_unavailable_reason();
  for (DType dt : {DType::F32, DType::F64, DType::I32, DType::U8}) {
    Tensor host = Tensor::empty({3, 5, 7}, dt);
    for (int64_t i = 0; i < host.numel(); ++i) {
      switch (dt) {
        case DType::F32: host.data<float>()[i] = float(i) * 0.5f - 3; break;
        case DType::F64: host.data<double>()[i] = double(i) * 0.25 - 7; break;
        case DType::I32: host.data<int32_t>()[i] = int32_t(i) - 50; break;
        case DType::U8: host.data<uint8_t>()[i] = uint8_t(i * 7); break;
      }
    }
    const Tensor device = host.to(Device::CUDA);
    EXPECT_EQ(device.device(), Device::CUDA);
    EXPECT_EQ(device.shape(), host.shape());
    EXPECT_NE(device.raw(), host.raw());
    EXPECT_TRUE(contains(device.describe(), "on cuda"));
    // Device to device, then back through copy_from into a fresh host tensor.
    Tensor device2 = Tensor::zeros({3, 5, 7}, dt, Device::CUDA);
    device2.copy_from(device);
    Tensor back = Tensor::zeros({3, 5, 7}, dt);
    back.copy_from(device2);
    for (int64_t i = 0; i < host.numel(); ++i) ASSERT_EQ(back.item(i), host.item(i)) << i;
    // to_vector reads device tensors directly; slices of device tensors keep their offset.
    if (dt == DType::F64) {
      EXPECT_EQ(device.to_vector<double>(), host.to_vector<double>());
      EXPECT_EQ(device.slice(1, 2).to_vector<double>(), host.slice(1, 2).to_vector<double>());
    }
  }
  Tensor z = Tensor::zeros({4}, DType::F32, Device::CUDA);
  EXPECT_EQ(z.to(Device::CPU).to_vector<float>(), (std::vector<float>{0, 0, 0, 0}));
  EXPECT_THROW(z.fill(1.0), Error);  // fill is CPU-only
  EXPECT_THROW((void)z.item(0), Error);
}

TEST(TensorCuda, AllocationWithoutCudaThrowsWithReason) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_FALSE(cuda_unavailable_reason().empty());
  // Device memory errors name the size asked for (device.h).
  const std::string message = error_message([] { (void)Tensor::empty({4}, DType::F32, Device::CUDA); });
  EXPECT_TRUE(contains(message, "16 bytes"));
}

}  // namespace
}  // namespace polytask
