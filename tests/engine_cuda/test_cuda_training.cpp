// The engine on the CUDA backend against the CPU reference: the two-input classification +
// regression model (all dense: concat, dense+ReLU, softmax-CE and MSE heads) takes the same
// training step on both devices. Built twice: against a GPU (skips without one) and against the
// CUDA emulator (runs in CI), see tests/CMakeLists.txt.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/balancer.h"
#include "engine/callbacks/learning_rate_scheduler.h"
#include "engine/device.h"
#include "engine/device_allocator.h"
#include "engine/layers.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "kernels/cuda/sync_switch.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"
#include "tests/engine_cuda/two_input_fixtures.h"

namespace polytask {
namespace {

using testing::all_close;


TEST(CudaTraining, TensorCorePrecisionsTrainLikeFp32) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  const Dataset data = two_input_data(240, 7);
  std::vector<std::vector<EpochLog>> runs;
  for (auto precision : {kernels::MathPrecision::FP32, kernels::MathPrecision::TF32,
                         kernels::MathPrecision::BF16}) {
    NetworkOptions o = options_on(Device::CUDA);
    o.precision = precision;
    Network net(two_input_model(), two_input_tasks(), o);
    Adam adam;
    Trainer trainer(net, adam);
    FitOptions fit;
    fit.epochs = 4;
    fit.batch_size = kBatch;
    fit.validation_split = 0.25;
    fit.seed = 3;
    runs.push_back(trainer.fit(data, fit));
  }
  const auto& fp32 = runs[0].back();
  for (size_t r = 1; r < runs.size(); ++r) {
    SCOPED_TRACE(r == 1 ? "tf32" : "bf16");
    const auto& low = runs[r].back();
    // Rounded operands change the bits (the tensor-core path really ran) ...
    EXPECT_NE(low.train[0].loss_sum, fp32.train[0].loss_sum);
    // ... but not the training: losses within a few percent after 4 epochs, and validation
    // accuracy (60 examples, so one example is 1.7 points) within 5 points.
    EXPECT_NEAR(low.train[0].loss(), fp32.train[0].loss(), 0.05 * fp32.train[0].loss());
    EXPECT_NEAR(low.validation[0].metric(0), fp32.validation[0].metric(0), 0.05);
  }
}

TEST(CudaTraining, TensorCorePrecisionsNeedTheGpu) {
  NetworkOptions o = options_on(Device::CPU);
  o.precision = kernels::MathPrecision::TF32;
  try {
    Network net(two_input_model(), two_input_tasks(), o);
    FAIL() << "tf32 on the CPU must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("precision tf32 runs on the GPU's tensor cores"),
              std::string::npos)
        << e.what();
  }
}

TEST(CudaTraining, EvaluatingInsideTheEpochCallbackKeepsTheGraphsWorking) {
  POLYTASK_REQUIRE_GPU();
  const Dataset data = two_input_data(4 * kBatch, 9);
  Network net(two_input_model(), two_input_tasks(), options_on(Device::CUDA));
  Adam adam;
  Trainer trainer(net, adam);
  FitOptions fit;
  fit.epochs = 3;
  fit.batch_size = kBatch;
  std::vector<double> test_losses;
  const auto logs = trainer.fit(data, fit, [&](const EpochLog&) {
    test_losses.push_back(trainer.evaluate(data, kBatch)[0].loss());
  });
  ASSERT_EQ(test_losses.size(), 3u);
  EXPECT_GT(logs[2].graphed_steps, 0);
  EXPECT_LT(test_losses[2], test_losses[0]);
  EXPECT_FALSE(net.staged_scalars()) << "fit restores the network's settings";
  EXPECT_FALSE(net.deferred_checks());
}

TEST(CudaTraining, GraphedStepsAreBitIdenticalToPlainOnes) {
  POLYTASK_REQUIRE_GPU();
  // 130 training rows: five full batches of 24 and a short one of 10 (each batch size gets its
  // graph); 74 validation rows: three batches of 24 and one of 2 (graphs of their own).
  const Dataset data = two_input_data(204, 6);
  std::vector<float> plain_params, graphed_params;
  const auto plain = fit_on(Device::CUDA, data, 3, 74.0 / 204.0, false, &plain_params);
  const auto graphed = fit_on(Device::CUDA, data, 3, 74.0 / 204.0, true, &graphed_params);
  EXPECT_EQ(plain[0].graphed_steps, 0);
  // Epoch 1: warm-up of both batch sizes; later epochs replay every step.
  EXPECT_EQ(graphed[0].graphed_steps, 4) << "steps 2-5 (the short batch warms up)";
  EXPECT_EQ(graphed[2].graphed_steps, 6);
  for (size_t e = 0; e < 3; ++e)
    for (size_t t = 0; t < 2; ++t) {
      EXPECT_EQ(graphed[e].train[t].loss_sum, plain[e].train[t].loss_sum) << "epoch " << e + 1;
      EXPECT_EQ(graphed[e].train[t].metric_sums, plain[e].train[t].metric_sums);
      EXPECT_EQ(graphed[e].train[t].examples, plain[e].train[t].examples);
      EXPECT_EQ(graphed[e].balance.grad_norm[t], plain[e].balance.grad_norm[t]);
      EXPECT_EQ(graphed[e].validation[t].loss_sum, plain[e].validation[t].loss_sum);
      EXPECT_EQ(graphed[e].validation[t].metric_sums, plain[e].validation[t].metric_sums);
      EXPECT_EQ(graphed[e].validation[t].examples, 74);
    }
  EXPECT_EQ(graphed_params, plain_params);
}

// A learning rate that changes between epochs reaches the update through the staged constants:
// the step's graph is captured once per batch size and replayed on, and the bits equal plain
// launches (and differ from a run whose rate stays put, so the change did arrive).
TEST(CudaTraining, ALearningRateScheduleNeitherRecapturesNorChangesTheBits) {
  POLYTASK_REQUIRE_GPU();
  const Dataset data = two_input_data(204, 6);
  const Callbacks halving = {std::make_shared<callbacks::LearningRateScheduler>(
      [](int epoch, double lr) { return epoch == 0 ? lr : lr * 0.5; })};
  const auto run = [&](bool graphs, bool schedule) {
    return fit_on(Device::CUDA, data, 3, 74.0 / 204.0, graphs, nullptr,
                  schedule ? halving : Callbacks{});
  };
  const auto plain = run(false, true);
  const auto graphed = run(true, true);
  const auto constant = run(true, false);
  EXPECT_FLOAT_EQ(float(graphed[2].learning_rate), 0.25e-3f);
  EXPECT_EQ(graphed[1].graphed_steps, 6) << "no re-capture after the rate changed";
  EXPECT_EQ(graphed[2].graphed_steps, 6);
  for (size_t e = 0; e < 3; ++e)
    for (size_t t = 0; t < 2; ++t) {
      EXPECT_EQ(graphed[e].train[t].loss_sum, plain[e].train[t].loss_sum) << "epoch " << e + 1;
      EXPECT_EQ(graphed[e].validation[t].loss_sum, plain[e].validation[t].loss_sum);
    }
  EXPECT_EQ(graphed[0].train[0].loss_sum, constant[0].train[0].loss_sum);
  EXPECT_NE(graphed[2].train[0].loss_sum, constant[2].train[0].loss_sum);
}

// Turns the POLYTASK_CUDA_SYNC switch on for one scope.
class SyncAfterEveryLaunch {
 public:
  SyncAfterEveryLaunch() : previous_(kernels::cuda::sync_after_launch()) {
    kernels::cuda::set_sync_after_launch(true);
  }
  ~SyncAfterEveryLaunch() { kernels::cuda::set_sync_after_launch(previous_); }
  SyncAfterEveryLaunch(const SyncAfterEveryLaunch&) = delete;
  SyncAfterEveryLaunch& operator=(const SyncAfterEveryLaunch&) = delete;

 private:
  bool previous_;
};

// The switch synchronises after every launch, which a GPU refuses on a capturing stream (and
// which invalidates the capture): with it on, steps run without graphs, to the same bits.
TEST(CudaTraining, TheSyncSwitchTrainsAndEvaluatesWithoutGraphs) {
  POLYTASK_REQUIRE_GPU();
  const Dataset data = two_input_data(4 * kBatch, 9);
  std::vector<float> plain_params, synced_params;
  const auto plain = fit_on(Device::CUDA, data, 2, 0.25, false, &plain_params);
  const SyncAfterEveryLaunch sync;
  const auto synced = fit_on(Device::CUDA, data, 2, 0.25, true, &synced_params);
  EXPECT_EQ(synced[1].graphed_steps, 0);
  for (size_t t = 0; t < 2; ++t) {
    EXPECT_EQ(synced[1].train[t].loss_sum, plain[1].train[t].loss_sum);
    EXPECT_EQ(synced[1].validation[t].loss_sum, plain[1].validation[t].loss_sum);
  }
  EXPECT_EQ(synced_params, plain_params);

  Network net(two_input_model(), two_input_tasks(), options_on(Device::CUDA));
  Adam adam;
  Trainer trainer(net, adam);
  const auto first = trainer.evaluate(data, kBatch);
  EXPECT_EQ(trainer.evaluate(data, kBatch)[0].loss_sum, first[0].loss_sum)
      << "the second evaluation would replay a graph";
}

TEST(CudaTraining, AGpuEpochMatchesTheCpuEpoch) {
  POLYTASK_REQUIRE_GPU();
  const Dataset data = two_input_data(150, 1);  // 120 training rows: 5 steps, the last short
  const auto cpu = fit_on(Device::CPU, data, 2, 0.2);
  const auto gpu = fit_on(Device::CUDA, data, 2, 0.2);
  for (size_t e = 0; e < 2; ++e) {
    SCOPED_TRACE(::testing::Message() << "epoch " << e + 1);
    for (size_t t = 0; t < 2; ++t) {
      for (auto split : {&EpochLog::train, &EpochLog::validation}) {
        const TaskTotals& c = (cpu[e].*split)[t];
        const TaskTotals& g = (gpu[e].*split)[t];
        EXPECT_EQ(g.examples, c.examples);
        EXPECT_NEAR(g.loss(), c.loss(), 1e-4 * std::abs(c.loss()) + 1e-6);
        EXPECT_EQ(g.metric_counts, c.metric_counts);
        for (size_t m = 0; m < c.metric_sums.size(); ++m)
          EXPECT_NEAR(g.metric(m), c.metric(m), 1e-4 * std::abs(c.metric(m)) + 1e-6);
      }
      // The fan-out's statistics, kept on the device for the static balancer.
      EXPECT_NEAR(gpu[e].balance.grad_norm[t], cpu[e].balance.grad_norm[t],
                  1e-4 * cpu[e].balance.grad_norm[t]);
      EXPECT_DOUBLE_EQ(gpu[e].balance.weights[t], cpu[e].balance.weights[t]);
    }
    EXPECT_NEAR(gpu[e].balance.cos(0, 1), cpu[e].balance.cos(0, 1), 1e-4);
    EXPECT_DOUBLE_EQ(gpu[e].balance.conflict_rate(0, 1), cpu[e].balance.conflict_rate(0, 1));
  }
}

TEST(CudaTraining, AGpuStepReadsNothingBack) {
  POLYTASK_REQUIRE_GPU();
  // Reads per epoch (its sums, the label check, the fan-out statistics) do not grow with the
  // number of steps.
  for (bool graphs : {false, true}) {
    std::vector<int64_t> reads;
    for (int64_t rows : {4 * kBatch, 12 * kBatch}) {
      const Dataset data = two_input_data(rows, 2);
      const int64_t before = device_to_host_copies();
      fit_on(Device::CUDA, data, 1, 0.0, graphs);
      reads.push_back(device_to_host_copies() - before);
    }
    EXPECT_EQ(reads[0], reads[1]) << (graphs ? "with" : "without") << " graphs: 4 steps read "
                                  << "back " << reads[0] << " times, 12 steps " << reads[1]
                                  << " times";
  }
}

TEST(CudaTraining, AGpuStepCopiesNothingFromPageableMemory) {
  POLYTASK_REQUIRE_GPU();
  // A copy from pageable host memory may make the driver wait for the GPU; per-step values
  // (step number, loss seeds, optimiser constants) come from the pinned staging ring instead.
  // One-off uploads (the data, each epoch's order) remain, so the count must not grow with
  // the number of training steps and evaluation batches.
#if defined(POLYTASK_CUDA_EMULATION)
  for (bool graphs : {false, true}) {
    std::vector<int64_t> copies;
    for (int64_t rows : {4 * kBatch, 12 * kBatch}) {
      const Dataset data = two_input_data(rows, 2);
      const int64_t before = kernels::cuda::emulator::pageable_async_copies();
      fit_on(Device::CUDA, data, 1, 0.25, graphs);
      copies.push_back(kernels::cuda::emulator::pageable_async_copies() - before);
    }
    EXPECT_GT(copies[0], 0) << "the data's one-off uploads are pageable: the count sees them";
    EXPECT_EQ(copies[0], copies[1]) << (graphs ? "with" : "without") << " graphs: 3 steps and "
                                    << "1 evaluation batch copied from pageable memory "
                                    << copies[0] << " times, 9 steps and 3 batches " << copies[1]
                                    << " times";
  }
#else
  GTEST_SKIP() << "the CUDA emulator counts copies from pageable memory; a GPU does not";
#endif
}

TEST(CudaTraining, ABadLabelInAGpuEpochNamesTaskStepAndRow) {
  POLYTASK_REQUIRE_GPU();
  const Dataset data = two_input_data(3 * kBatch, 4, /*bad_row=*/30);
  Network net(two_input_model(), two_input_tasks(), options_on(Device::CUDA));
  Adam adam;
  Trainer trainer(net, adam);
  FitOptions fit;
  fit.epochs = 1;
  fit.batch_size = kBatch;
  fit.shuffle = false;  // row 30 is row 6 of the second batch
  try {
    trainer.fit(data, fit);
    FAIL() << "a label outside the classes must stop training";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("task 'class': row 6 of the batch at step 2 has a class "
                                         "label outside [0, 5)"),
              std::string::npos)
        << e.what();
  }
}

TEST(CudaTraining, ANonFiniteLossStopsAGpuEpoch) {
  POLYTASK_REQUIRE_GPU();
  Dataset data = two_input_data(2 * kBatch, 5);
  std::vector<float> huge(size_t(2 * kBatch * 21), 3e38f);
  data.inputs[1].tensor = Tensor::from_vector({2 * kBatch, 21}, huge);
  try {
    fit_on(Device::CUDA, data, 1, 0.0);
    FAIL() << "training on overflowing inputs must stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("became"), std::string::npos) << e.what();
  }
}

TEST(CudaTraining, OneStepMatchesTheCpuStep) {
  POLYTASK_REQUIRE_GPU();
  Network cpu(two_input_model(), two_input_tasks(), options_on(Device::CPU));
  Network gpu(two_input_model(), two_input_tasks(), options_on(Device::CUDA));
  ASSERT_EQ(host(cpu.parameters().values), host(gpu.parameters().values))
      << "both networks start from the same seeded parameters";
  Adam cpu_adam, gpu_adam;
  // Twice: the second step runs on Adam moments and parameters the first one updated; the last
  // batch is short (n < max_batch), as an epoch's last batch is.
  for (int64_t n : {kBatch, kBatch - 5}) {
    const StepResult c = train_step(cpu, cpu_adam, n, uint64_t(100 + n));
    const StepResult g = train_step(gpu, gpu_adam, n, uint64_t(100 + n));
    // Losses: float sums over ≤ 24 rows in another order (the GPU reduces in double).
    EXPECT_TRUE(all_close(g.losses, c.losses, 1e-5, 1e-7)) << "batch of " << n;
    // Accuracy counts exactly; the |error| sum differs only by summation order.
    EXPECT_EQ(g.metric_sums[0], c.metric_sums[0]) << "correct predictions in the batch";
    EXPECT_TRUE(all_close(g.metric_sums, c.metric_sums, 1e-6, 0.0)) << "batch of " << n;
    // Gradients: dense GEMMs of length ≤ 34 in float, summed in another order.
    EXPECT_TRUE(all_close(g.grads, c.grads, 1e-4, 1e-6)) << "batch of " << n;
    // Adam moves each parameter by about lr; gradient noise of 1e-6 relative moves it by far
    // less, except where a gradient is ~0 and its sign is noise: bounded by 1e-5 absolute.
    EXPECT_TRUE(all_close(g.params, c.params, 1e-5, 1e-5)) << "batch of " << n;
  }
}

TEST(CudaTraining, BalancersThatReadGradientsMatchTheCpu) {
  POLYTASK_REQUIRE_GPU();
  for (const char* name : {"pcgrad", "gradnorm", "mgda"}) {
    Network cpu(two_input_model(), two_input_tasks(), options_on(Device::CPU));
    Network gpu(two_input_model(), two_input_tasks(), options_on(Device::CUDA));
    BalancerOptions b;
    b.name = name;
    cpu.fan_out().set_balancer(make_balancer(b));
    gpu.fan_out().set_balancer(make_balancer(b));
    Sgd cpu_sgd, gpu_sgd;
    const StepResult c = train_step(cpu, cpu_sgd, kBatch, 5);
    const StepResult g = train_step(gpu, gpu_sgd, kBatch, 5);
    EXPECT_TRUE(all_close(g.grads, c.grads, 1e-4, 1e-6)) << name;
    EXPECT_TRUE(all_close(g.params, c.params, 1e-5, 1e-7)) << name;
  }
}

TEST(CudaTraining, TwoRunsWithOneSeedAreBitIdentical) {
  POLYTASK_REQUIRE_GPU();
  std::vector<std::vector<double>> runs;
  for (int run = 0; run < 2; ++run) {
    Network net(two_input_model(), two_input_tasks(), options_on(Device::CUDA));
    Adam adam;
    std::vector<double> losses;
    for (uint64_t step = 0; step < 3; ++step) {
      const StepResult r = train_step(net, adam, kBatch, step);
      losses.insert(losses.end(), r.losses.begin(), r.losses.end());
    }
    runs.push_back(losses);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

TEST(CudaTraining, StepsAllocateNoDeviceMemory) {
  POLYTASK_REQUIRE_GPU();
  Network net(two_input_model(), two_input_tasks(), options_on(Device::CUDA));
  Adam adam;
  train_step(net, adam, kBatch, 1);  // first step: optimiser state, loss scratch
  const int64_t before = device_memory_stats().device_allocations;
  for (uint64_t step = 2; step < 5; ++step) train_step(net, adam, kBatch, step);
  EXPECT_EQ(device_memory_stats().device_allocations, before)
      << "a training step called cudaMalloc; the caching allocator should have served it";
}

TEST(CudaTraining, ABadLabelNamesTheRow) {
  POLYTASK_REQUIRE_GPU();
  Network net(two_input_model(), two_input_tasks(), options_on(Device::CUDA));
  fill_batch(net, 3);
  Tensor labels = net.target_buffer(0);
  std::vector<int32_t> v = labels.to_vector<int32_t>();
  v[9] = 5;  // classes are 0..4
  labels.copy_from(Tensor::from_vector(labels.shape(), v));
  try {
    net.forward(kBatch, true);
    FAIL() << "a label outside the classes must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 9 has label 5, outside [0, 5)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(net.backward(), Error) << "no backward after a failed forward";
}

TEST(CudaTraining, DoublePrecisionStaysOnTheCpuAndSaysSo) {
  POLYTASK_REQUIRE_GPU();
  NetworkOptions o = options_on(Device::CUDA);
  o.dtype = DType::F64;
  Network net(two_input_model(), two_input_tasks(), o);
  try {
    net.forward(kBatch, true);
    FAIL() << "the CUDA kernels are f32 only";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the CUDA kernels compute in f32"), std::string::npos)
        << e.what();
  }
}

TEST(CudaTraining, OutOfDeviceMemoryNamesTheSize) {
  POLYTASK_REQUIRE_GPU();
  try {
    Tensor::empty({int64_t(1) << 26, int64_t(1) << 24}, DType::F32, Device::CUDA);  // 256 PiB
    FAIL() << "no device has 256 PiB";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of device memory allocating 4503599627370496 bytes"),
              std::string::npos)
        << e.what();
  }
}

// A cudaMalloc refused because a graph is being captured is not an out-of-memory error, and the
// cache is not released (a synchronisation and cudaFree, both refused) during a capture.
TEST(CudaTraining, AllocatingWhileCapturingNamesTheCaptureNotMemory) {
  POLYTASK_REQUIRE_GPU();
  Tensor::empty({1000}, DType::F32, Device::CUDA);  // leaves a cached block
  const DeviceMemoryStats before = device_memory_stats();
  ASSERT_GT(before.bytes_cached, 0u);
  const cudaStream_t stream = cuda_stream();
  POLYTASK_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  std::string allocating, emptying;
  try {
    Tensor::empty({int64_t(1) << 22}, DType::F32, Device::CUDA);  // 16 MiB: not cached
  } catch (const Error& e) {
    allocating = e.what();
  }
  try {
    empty_device_cache();
  } catch (const Error& e) {
    emptying = e.what();
  }
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(stream, &graph), cudaErrorStreamCaptureInvalidated);
  (void)cudaGetLastError();
  EXPECT_NE(allocating.find("allocating 16777216 bytes while a CUDA graph is being captured "
                            "(cudaErrorStreamCaptureUnsupported)"),
            std::string::npos)
      << allocating;
  EXPECT_EQ(allocating.find("out of device memory"), std::string::npos) << allocating;
  EXPECT_NE(emptying.find("while a CUDA graph is being captured"), std::string::npos) << emptying;
  EXPECT_EQ(device_memory_stats().bytes_cached, before.bytes_cached) << "nothing was released";
  empty_device_cache();
  EXPECT_EQ(device_memory_stats().bytes_cached, 0u);
}

TEST(CudaTraining, DeviceTensorsRoundTrip) {
  POLYTASK_REQUIRE_GPU();
  const std::vector<float> v = testing::random_vector<float>(1001, 3);
  Tensor d = Tensor::from_vector<float>({1001}, v).to(Device::CUDA);
  EXPECT_EQ(d.to_vector<float>(), v);
  d.slice(10, 20).fill(2.5);
  std::vector<float> expected = v;
  std::fill(expected.begin() + 10, expected.begin() + 20, 2.5f);
  EXPECT_EQ(d.to_vector<float>(), expected);
  d.zero();
  EXPECT_EQ(d.to_vector<float>(), std::vector<float>(1001, 0.0f));
}

}  // namespace
}  // namespace polytask
