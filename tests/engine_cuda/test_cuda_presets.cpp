// Every preset on the CUDA backend against the CPU reference: two training steps (forward,
// backward, SGD update) give the same losses, gradients and parameters within the tolerances
// below; and a short training run on generated data reaches the CPU's accuracy. Built against a
// GPU (skips without one) and against the CUDA emulator (runs in CI).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>

#include "datasets/data.h"
#include "datasets/labels.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "models/config.h"
#include "tests/models/preset_cases.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::models {
namespace {

using testing::all_close;

// Small batches keep the emulated convolutions quick; 5 is no multiple of any tile.
constexpr int64_t kBatch = 5;

Network make_network(const PresetCase& pc, Device device, const SharingOptions& sharing = {}) {
  ModelConfig config = preset_config(pc.name);
  config.sharing = sharing;
  NetworkOptions options;
  options.max_batch = kBatch;
  options.seed = 3;
  options.device = device;
  options.fan_out = fan_out_value(config);
  options.soft_sharing = soft_sharing_of(config);
  return Network(build_model(config, pc.shapes), config.tasks, options);
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::abs(double(x)));
  return m;
}

// max |gpu - cpu| <= tolerance · scale for the `field` (value or grad) of every parameter (the
// non-trainable BatchNorm statistics too, for values), naming the first that is not. The scale
// is the parameter's largest |CPU| element — for a bias, at least its layer's weights': a conv
// bias in front of a BatchNorm has a gradient that is exactly zero in exact arithmetic, so on
// both devices it is rounding noise at the size of the layer's other gradients.
::testing::AssertionResult parameters_close(const Network& gpu, const Network& cpu,
                                            Tensor Parameter::*field, double tolerance) {
  const auto& gpu_params = gpu.parameters().all;
  const auto& cpu_params = cpu.parameters().all;
  std::map<std::string, double> scales;
  for (const Parameter* p : cpu_params)
    if ((p->*field).defined()) scales[p->name] = max_abs((p->*field).to_vector<float>());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const Parameter& param = *cpu_params[i];
    const Tensor& c = param.*field;
    if (!c.defined()) continue;  // no gradient for BatchNorm statistics
    double scale = scales[param.name];
    const std::string suffix = ".bias";
    if (param.name.ends_with(suffix)) {
      const auto weight = scales.find(param.name.substr(0, param.name.size() - suffix.size()) + ".weight");
      if (weight != scales.end()) scale = std::max(scale, weight->second);
    }
    const auto expected = c.to_vector<float>();
    const auto actual = (gpu_params[i]->*field).to_vector<float>();
    double worst = 0;
    size_t at = 0;
    for (size_t k = 0; k < expected.size(); ++k) {
      const double d = std::abs(double(actual[k]) - double(expected[k]));
      if (!(d <= worst)) worst = d, at = k;  // NaN counts as worst
    }
    if (!(worst <= tolerance * scale + 1e-12))
      return ::testing::AssertionFailure()
             << param.name << "[" << at << "]: " << actual[at] << " vs CPU " << expected[at]
             << "; scale " << scale << ", tolerance " << tolerance << " of it";
  }
  return ::testing::AssertionSuccess();
}

class CudaPresetSteps : public ::testing::TestWithParam<PresetCase> {};

// Two SGD steps on the GPU and on the CPU from the same parameters and batches: the losses, the
// gradients and the updated parameters agree.
void expect_two_steps_match(Network& cpu, Network& gpu) {
  // SGD keeps a parameter's difference proportional to its gradient's; Adam's first steps
  // move every parameter by about lr whatever the gradient's size, which would turn noise in
  // a near-zero gradient into an lr-sized difference (the dense test covers Adam).
  kernels::SgdParams sgd;
  sgd.lr = 0.05f;
  sgd.momentum = 0.9f;
  Sgd cpu_sgd(sgd), gpu_sgd(sgd);
  for (uint64_t step = 0; step < 2; ++step) {
    SCOPED_TRACE(::testing::Message() << "step " << step);
    for (Network* net : {&cpu, &gpu}) {
      fill_random_batch(*net, 40 + step);
      net->set_step(step);  // the dropout masks key on it
      net->forward(kBatch, true);
    }
    std::vector<double> cpu_losses, gpu_losses;
    for (size_t t = 0; t < cpu.tasks().size(); ++t) {
      cpu_losses.push_back(cpu.task_loss(t));
      gpu_losses.push_back(gpu.task_loss(t));
    }
    // Float sums of up to ~10^4 terms (conv patches, BatchNorm statistics) in another order.
    EXPECT_TRUE(all_close(gpu_losses, cpu_losses, 1e-4, 1e-6));
    cpu.backward();
    gpu.backward();
    // Gradients pass through float sums of up to ~10^4 terms (conv patches, BatchNorm
    // statistics) taken in another order, and through BatchNorm's cancellations: a conv bias
    // before a BatchNorm has a gradient that is exactly zero in exact arithmetic and rounding
    // noise in float. So each parameter is compared relative to its own largest element.
    EXPECT_TRUE(parameters_close(gpu, cpu, &Parameter::grad, 1e-3));
    cpu_sgd.step(cpu.parameters());
    gpu_sgd.step(gpu.parameters());
    EXPECT_TRUE(parameters_close(gpu, cpu, &Parameter::value, 1e-4))
        << "parameters (and BatchNorm running statistics) after the update";
  }
}

TEST_P(CudaPresetSteps, TwoStepsMatchTheCpu) {
  POLYTASK_REQUIRE_GPU();
  Network cpu = make_network(GetParam(), Device::CPU);
  Network gpu = make_network(GetParam(), Device::CUDA);
  expect_two_steps_match(cpu, gpu);
}

INSTANTIATE_TEST_SUITE_P(AllPresets, CudaPresetSteps, ::testing::ValuesIn(preset_cases()),
                         preset_test_name);

// The [sharing] modes on the GPU: task copies, the soft-sharing gradient, cross-stitch units
// and MMoE's gates, and the fan-out cut at several values, on the small MultiFashion network.
class CudaSharingSteps : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaSharingSteps, TwoStepsMatchTheCpu) {
  POLYTASK_REQUIRE_GPU();
  const PresetCase& pc = preset_cases()[6];
  ASSERT_EQ(std::string(pc.name), "multi-fashion");
  SharingOptions sharing;
  sharing.mode = GetParam();
  sharing.branch_after = "2";  // conv1 and pool1 shared
  sharing.soft_strength = 0.05;
  sharing.experts = 2;  // MMoE's cost grows with the experts; two test the gates as well
  Network cpu = make_network(pc, Device::CPU, sharing);
  Network gpu = make_network(pc, Device::CUDA, sharing);
  expect_two_steps_match(cpu, gpu);
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaSharingSteps,
                         ::testing::Values("hard", "soft", "cross_stitch", "mmoe"),
                         [](const auto& mode) { return mode.param; });

// Random data for a preset: images of k/255 values (they travel as bytes), class indices and
// [0, 1] regression values.
Dataset random_preset_data(const PresetCase& pc, const ModelConfig& config, const Model& model,
                           int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Dataset d;
  for (const auto& [name, shape] : pc.shapes) {
    std::vector<float> v(size_t(rows * shape.numel()));
    for (float& x : v) x = float(rng() % 256) / 255.0f;
    d.inputs.push_back({name, Tensor::from_vector(shape.with_batch(rows), v)});
  }
  for (const Task& t : config.tasks) {
    const Shape out = model.output(t.output_name()).value.shape();
    if (t.effective_target() == TargetKind::ClassIndex) {
      std::vector<int32_t> v(static_cast<size_t>(rows));
      for (int32_t& x : v) x = int32_t(rng() % uint64_t(out[0]));
      d.targets.push_back({t.name, Tensor::from_vector({rows}, v)});
    } else {
      std::vector<float> v(size_t(rows * out.numel()));
      for (float& x : v) x = float(rng() % 1000) / 1000.0f;
      d.targets.push_back({t.name, Tensor::from_vector(out.with_batch(rows), v)});
    }
  }
  return d;
}

// Two epochs with CUDA graphs and two without, from the same start: the same bits.
void expect_graphed_epochs_bit_identical(const PresetCase& pc, const ModelConfig& config) {
  std::vector<std::vector<float>> parameters;
  std::vector<std::vector<EpochLog>> logs;
  for (bool graphs : {false, true}) {
    NetworkOptions options;
    options.max_batch = 8;
    options.seed = 2;
    options.device = Device::CUDA;
    options.fan_out = fan_out_value(config);
    options.soft_sharing = soft_sharing_of(config);
    Network net(build_model(config, pc.shapes), config.tasks, options);
    const Dataset data = random_preset_data(pc, config, net.model(), 20, 8);  // 8 + 8 + 4
    Adam adam;
    Trainer trainer(net, adam);
    FitOptions fit;
    fit.epochs = 2;
    fit.batch_size = 8;
    fit.seed = 4;
    fit.cuda_graphs = graphs;
    logs.push_back(trainer.fit(data, fit));
    parameters.push_back(net.parameters().values.to_vector<float>());
    parameters.push_back(net.parameters().state.to_vector<float>());
  }
  EXPECT_GT(logs[1][1].graphed_steps, 0);
  for (size_t e = 0; e < 2; ++e)
    for (size_t t = 0; t < config.tasks.size(); ++t)
      EXPECT_EQ(logs[1][e].train[t].loss_sum, logs[0][e].train[t].loss_sum) << "epoch " << e + 1;
  EXPECT_EQ(parameters[2], parameters[0]) << "trainable parameters";
  EXPECT_EQ(parameters[3], parameters[1]) << "BatchNorm running statistics";
}

TEST(CudaPresetTraining, GraphedEpochsWithBatchNormAndDropoutAreBitIdenticalToPlainOnes) {
  POLYTASK_REQUIRE_GPU();
  const PresetCase& pc = preset_cases()[4];  // fashion-type-brightness: BatchNorm and Dropout
  ASSERT_EQ(std::string(pc.name), "fashion-type-brightness");
  expect_graphed_epochs_bit_identical(pc, preset_config(pc.name));
}

// Graphs for the two modes that add most inside a step (each takes ~15 s emulated): soft
// sharing's kernel, and cross-stitch's mixing layers with a fan-out cut at several values.
class CudaSharingGraphs : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaSharingGraphs, GraphedEpochsAreBitIdenticalToPlainOnes) {
  POLYTASK_REQUIRE_GPU();
  const PresetCase& pc = preset_cases()[6];
  ModelConfig config = preset_config(pc.name);
  config.sharing.mode = GetParam();
  config.sharing.branch_after = "2";
  config.sharing.soft_strength = 0.05;
  expect_graphed_epochs_bit_identical(pc, config);
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaSharingGraphs, ::testing::Values("soft", "cross_stitch"),
                         [](const auto& mode) { return mode.param; });

TEST(CudaPresetTraining, ReachesTheCpuAccuracyOnGeneratedData) {
  POLYTASK_REQUIRE_GPU();
  // The all-dense preset on its synthetic data: quick to emulate, and learnable in a few epochs.
  const ModelConfig config = preset_config("two-input-cls-reg");
  datasets::LoadOptions load;
  load.seed = 5;
  load.synthetic_train = 1500;
  load.synthetic_test = 500;
  datasets::DataSplits data = datasets::load_data(config.default_data, load);
  datasets::attach_task_targets(data.train, config.tasks, load.seed);
  datasets::attach_task_targets(data.test, config.tasks, load.seed);
  std::map<std::string, Shape> shapes;
  for (const auto& in : data.train.inputs) shapes[in.name] = in.tensor.shape().sample();

  std::vector<double> accuracy;
  for (Device device : {Device::CPU, Device::CUDA}) {
    NetworkOptions options;
    options.max_batch = 64;
    options.seed = 5;
    options.device = device;
    Network net(build_model(config, shapes), config.tasks, options);
    kernels::AdamParams adam_params;
    adam_params.lr = 3e-3f;
    Adam adam(adam_params);
    Trainer trainer(net, adam);
    FitOptions fit;
    fit.epochs = 6;
    fit.batch_size = 64;
    fit.seed = 5;
    trainer.fit(data.train, fit);
    const auto totals = trainer.evaluate(data.test, 64);
    accuracy.push_back(totals[0].metric(0));
  }
  EXPECT_GT(accuracy[0], 0.4) << "the CPU run should learn the synthetic classes (10 of them)";
  // The runs part ways only by float rounding (another summation order): a few of the 500
  // test examples may flip.
  EXPECT_NEAR(accuracy[1], accuracy[0], 0.02)
      << "GPU test accuracy " << accuracy[1] << " vs CPU " << accuracy[0];
}

}  // namespace
}  // namespace polytask::models
