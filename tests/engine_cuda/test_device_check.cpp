// The start-up check of the GPU (engine/device.h): a GPU older than compute capability 7.5, or
// one this build has no kernel image for, is refused with one line naming what is wrong;
// --device auto then uses the CPU and says why, --device cuda fails with that line, and
// --precision tf32|bf16 needs compute capability 8.0. Under the emulator the device properties
// are faked (kernels/cuda/emulator.h, fake_device); on a GPU only the real device is checked.
#include <gtest/gtest.h>

#include <string>

#include "engine/device.h"
#include "engine/layers.h"
#include "engine/network.h"
#include "kernels/cuda/kernel_image.h"
#include "kernels/error.h"
#include "tests/support/cuda_test.h"

namespace polytask {
namespace {

using kernels::MathPrecision;

#if defined(POLYTASK_CUDA_EMULATION)
namespace emulator = kernels::cuda::emulator;

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' lacks '" << part << "'";
}

// Fakes a device for one test and restores the emulator's default (9.0, image present) after.
class FakedDevice : public ::testing::Test {
 protected:
  void fake(const char* name, int major, int minor, bool kernel_image = true) {
    emulator::FakeDevice device;
    device.name = name;
    device.major = major;
    device.minor = minor;
    device.kernel_image = kernel_image;
    emulator::fake_device(device);
  }
  void TearDown() override { emulator::fake_device({}); }
};

// A one-layer network, enough for the precision check in Network's plan.
Network small_network(MathPrecision precision) {
  ModelBuilder b;
  Value x = b.input("x", {4});
  Model model = b.build({{"y", layers::dense(2, layers::Activation::None, "out")(x)}});
  Task task;
  task.name = "y";
  task.loss = LossKind::MeanSquaredError;
  NetworkOptions o;
  o.max_batch = 2;
  o.device = Device::CUDA;
  o.precision = precision;
  return Network(model, {task}, o);
}

TEST_F(FakedDevice, ComputeCapabilityBelowTuringIsRefused) {
  fake("NVIDIA GeForce GTX 1080", 6, 1);
  const CudaCheck check = check_cuda();
  EXPECT_TRUE(check.device_present);
  EXPECT_EQ(check.problem,
            "the GPU NVIDIA GeForce GTX 1080 has compute capability 6.1; polytask needs 7.5 "
            "(Turing) or later");
}

TEST_F(FakedDevice, MissingKernelImageNamesTheBuiltArchitectures) {
  fake("NVIDIA GeForce RTX 3090", 8, 6, /*kernel_image=*/false);
  const std::string problem = check_cuda().problem;
  EXPECT_TRUE(contains(problem, "this polytask was built for sm_"));
  EXPECT_TRUE(contains(problem, "; the GPU NVIDIA GeForce RTX 3090 is sm_86: rebuild with "
                                 "-DCMAKE_CUDA_ARCHITECTURES=86"));
  // Every architecture of the build is named, without CMake's -real suffix.
  const std::string built = kernels::cuda::compiled_architectures();
  const std::string first = built.substr(0, built.find_first_of("-,"));
  EXPECT_TRUE(contains(problem, "sm_" + first));
  EXPECT_FALSE(contains(problem, "-real"));
}

TEST_F(FakedDevice, AutoFallsBackToTheCpuAndSaysWhy) {
  fake("Tesla P100-PCIE-16GB", 6, 0);
  const DeviceSelection selection = select_device("auto", check_cuda());
  EXPECT_EQ(selection.device, Device::CPU);
  EXPECT_EQ(selection.note,
            "--device auto uses the CPU: the GPU Tesla P100-PCIE-16GB has compute capability "
            "6.0; polytask needs 7.5 (Turing) or later");
}

TEST_F(FakedDevice, CudaFailsWithTheReason) {
  fake("NVIDIA L4", 8, 9, /*kernel_image=*/false);
  try {
    select_device("cuda", check_cuda());
    FAIL() << "--device cuda must be refused";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(std::string(e.what()), "--device cuda: this polytask was built for "));
    EXPECT_TRUE(contains(std::string(e.what()), "rebuild with -DCMAKE_CUDA_ARCHITECTURES=89"));
  }
}

TEST_F(FakedDevice, TensorCorePrecisionsNeedAmpereOnTuring) {
  fake("NVIDIA T4", 7, 5);
  EXPECT_EQ(check_cuda().problem, "");  // FP32 runs on a T4
  EXPECT_EQ(tensor_core_problem(MathPrecision::FP32), "");
  EXPECT_EQ(tensor_core_problem(MathPrecision::TF32),
            "--precision tf32 needs a GPU of compute capability 8.0 or later (this one: NVIDIA "
            "T4, 7.5)");
  try {
    small_network(MathPrecision::BF16);
    FAIL() << "bf16 on a T4 must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "--precision bf16 needs a GPU of compute capability 8.0 or later (this one: "
              "NVIDIA T4, 7.5)");
  }
  EXPECT_NO_THROW(small_network(MathPrecision::FP32));
}

TEST_F(FakedDevice, HopperPassesEveryCheck) {
  fake("NVIDIA H100 80GB HBM3", 9, 0);
  const CudaCheck check = check_cuda();
  EXPECT_TRUE(check.device_present);
  EXPECT_EQ(check.problem, "");
  const DeviceSelection selection = select_device("auto", check);
  EXPECT_EQ(selection.device, Device::CUDA);
  EXPECT_EQ(selection.note, "");
  EXPECT_EQ(tensor_core_problem(MathPrecision::TF32), "");
  EXPECT_NO_THROW(small_network(MathPrecision::TF32));
}
#endif

TEST(DeviceCheck, NoGpuMeansCpuWithoutANote) {
  const DeviceSelection selection = select_device("auto", CudaCheck{false, "no CUDA device present"});
  EXPECT_EQ(selection.device, Device::CPU);
  EXPECT_EQ(selection.note, "");
  EXPECT_EQ(select_device("cpu", CudaCheck{}).device, Device::CPU);
  EXPECT_THROW(select_device("gpu", CudaCheck{}), Error);
}

// On a real GPU: the device this binary runs on passes the check the engine makes.
TEST(DeviceCheck, ThisGpuPassesTheCheck) {
  POLYTASK_REQUIRE_GPU();
  EXPECT_EQ(check_cuda().problem, "");
  EXPECT_EQ(cuda_unavailable_reason(), "");
}

}  // namespace
}  // namespace polytask
