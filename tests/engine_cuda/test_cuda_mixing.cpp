// The soft-sharing layers (softmax, mixture, cross_stitch) on the CUDA backend against the CPU
// reference, inside a two-task network: two training steps (forward, backward, SGD update) give
// the same losses, gradients and parameters within float rounding, and a second run the same
// bits. Built against a GPU (skips without one) and against the CUDA emulator (runs in CI).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/layers.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask {
namespace {

using testing::all_close;

constexpr int64_t kBatch = 24;  // not a multiple of any row group or warp
constexpr int64_t kFeatures = 13;
constexpr int64_t kClasses = 3;

// Two experts joined by a two-row cross-stitch unit in the trunk; their concatenation is the
// fan-out; each head gates the experts with a softmax of its own, mixes them, and the class head
// stitches its tower's output with the mixture (a row whose alpha and inputs are all its own).
Model mixing_model() {
  using namespace layers;
  ModelBuilder b;
  Value x = b.input("x", {kFeatures});
  Value shared = dense(8, Activation::ReLU, "shared")(x);
  Value a = dense(5, Activation::None, "expert_a")(shared);
  Value c = dense(5, Activation::None, "expert_b")(shared);
  Value experts =
      concat("experts")({cross_stitch({.name = "stitch_a"})({a, c}),
                         cross_stitch({.self_weight = 0.8, .name = "stitch_b"})({c, a})});
  const auto head = [&](const std::string& task) {
    Value gate =
        softmax(task + "_gate")(dense(2, Activation::None, task + "_gate_logits")(experts));
    return mixture(task + "_mix")({experts, gate});
  };
  Value mix_class = head("class");
  Value tower = dense(5, Activation::ReLU, "class_tower")(mix_class);
  Value stitched = cross_stitch({.name = "class_stitch"})({tower, mix_class});
  return b.build({{"class", dense(kClasses, Activation::None, "class_logits")(stitched)},
                  {"value", dense(1, Activation::None, "value_out")(head("value"))}});
}

std::vector<Task> mixing_tasks() {
  Task cls;
  cls.name = "class";
  cls.loss = LossKind::SoftmaxCrossEntropy;
  Task value;
  value.name = "value";
  value.loss = LossKind::MeanSquaredError;
  value.weight = 0.5;
  return {cls, value};
}

Network make_network(Device device) {
  NetworkOptions o;
  o.max_batch = kBatch;
  o.device = device;
  o.seed = 11;
  return Network(mixing_model(), mixing_tasks(), o);
}

// The same seeded batch into either network's buffers (via host tensors).
void fill_batch(Network& net, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const auto upload = [](const Tensor& dst, const Tensor& host) {
    Tensor view = dst.view(host.shape());
    view.copy_from(host);
  };
  const Tensor& in = net.input_buffer(0);
  std::vector<float> x(size_t(in.numel()));
  for (float& v : x) v = uniform(rng);
  upload(in, Tensor::from_vector(in.shape(), x));
  std::vector<int32_t> labels(static_cast<size_t>(kBatch));
  for (int32_t& l : labels) l = int32_t(rng() % kClasses);
  upload(net.target_buffer(0), Tensor::from_vector(net.target_buffer(0).shape(), labels));
  std::vector<float> values(static_cast<size_t>(kBatch));
  for (float& v : values) v = uniform(rng);
  upload(net.target_buffer(1), Tensor::from_vector(net.target_buffer(1).shape(), values));
}

struct StepResult {
  std::vector<double> losses;
  std::vector<float> grads, params;
};

StepResult train_step(Network& net, Optimizer& opt, int64_t n, uint64_t batch_seed) {
  fill_batch(net, batch_seed);
  net.forward(n, true);
  StepResult r;
  for (size_t t = 0; t < net.tasks().size(); ++t) r.losses.push_back(net.task_loss(t));
  net.backward();
  r.grads = net.parameters().grads.to_vector<float>();
  opt.step(net.parameters());
  r.params = net.parameters().values.to_vector<float>();
  return r;
}

TEST(CudaMixingNetwork, TwoStepsMatchTheCpu) {
  POLYTASK_REQUIRE_GPU();
  Network cpu = make_network(Device::CPU);
  Network gpu = make_network(Device::CUDA);
  ASSERT_EQ(cpu.parameters().values.to_vector<float>(), gpu.parameters().values.to_vector<float>())
      << "both networks start from the same parameters, alphas included";
  Sgd cpu_sgd, gpu_sgd;
  // The second step runs on parameters the first one updated, on a short batch.
  for (int64_t n : {kBatch, kBatch - 5}) {
    const StepResult c = train_step(cpu, cpu_sgd, n, uint64_t(40 + n));
    const StepResult g = train_step(gpu, gpu_sgd, n, uint64_t(40 + n));
    // Float sums of <= 24 rows in another order.
    EXPECT_TRUE(all_close(g.losses, c.losses, 1e-5, 1e-7)) << "batch of " << n;
    // Dense GEMMs of length <= 13 and the mixing layers' double sums, in float.
    EXPECT_TRUE(all_close(g.grads, c.grads, 1e-4, 1e-6)) << "batch of " << n;
    EXPECT_TRUE(all_close(g.params, c.params, 1e-5, 1e-7)) << "batch of " << n;
  }
}

TEST(CudaMixingNetwork, TwoRunsGiveTheSameBits) {
  POLYTASK_REQUIRE_GPU();
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    Network gpu = make_network(Device::CUDA);
    Sgd sgd;
    train_step(gpu, sgd, kBatch, 7);
    runs.push_back(train_step(gpu, sgd, kBatch, 8).params);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

}  // namespace
}  // namespace polytask
