// The two-input classification + regression model (all dense: concat, dense+ReLU, softmax-CE
// and MSE heads) and its data, shared by the engine tests on the CUDA backend: one seeded batch
// into any network's buffers, one training step with its results on the host, and whole fits.
#pragma once

#include <random>
#include <string>

#include "engine/balancer.h"
#include "engine/layers.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"

namespace polytask {

constexpr int64_t kBatch = 24;  // not a multiple of any tile or warp

// The two-input-cls-reg preset's shape, scaled down so the emulator runs it quickly.
inline Model two_input_model() {
  using namespace layers;
  ModelBuilder b;
  Value a = b.input("a", {13});
  Value bb = b.input("b", {21});
  Value features = concat("features")({a, bb});
  Value shared = dense(17, Activation::ReLU, "shared")(features);
  return b.build({{"class", dense(5, Activation::None, "class_logits")(shared)},
                  {"value", dense(1, Activation::None, "value_out")(shared)}});
}

inline std::vector<Task> two_input_tasks() {
  Task cls;
  cls.name = "class";
  cls.loss = LossKind::SoftmaxCrossEntropy;
  cls.weight = 1.0;
  Task value;
  value.name = "value";
  value.loss = LossKind::MeanSquaredError;
  value.weight = 0.5;
  return {cls, value};
}

inline NetworkOptions options_on(Device device) {
  NetworkOptions o;
  o.max_batch = kBatch;
  o.device = device;
  o.seed = 7;
  return o;
}

// The same seeded batch into any network's input and target buffers (via host tensors).
inline void fill_batch(Network& net, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const auto upload = [](const Tensor& dst, const Tensor& host) {
    Tensor view = dst.view(host.shape());
    view.copy_from(host);
  };
  for (size_t i = 0; i < 2; ++i) {
    const Tensor& in = net.input_buffer(i);
    std::vector<float> v(size_t(in.numel()));
    for (float& x : v) x = uniform(rng);
    upload(in, Tensor::from_vector(in.shape(), v));
  }
  std::vector<int32_t> labels(kBatch);
  for (int32_t& l : labels) l = int32_t(rng() % 5);
  upload(net.target_buffer(0), Tensor::from_vector(net.target_buffer(0).shape(), labels));
  std::vector<float> values(kBatch);
  for (float& x : values) x = uniform(rng);
  upload(net.target_buffer(1), Tensor::from_vector(net.target_buffer(1).shape(), values));
}

inline std::vector<float> host(const Tensor& t) { return t.to_vector<float>(); }

struct StepResult {
  std::vector<double> losses;
  std::vector<float> grads, params;
  std::vector<double> metric_sums;
};

inline StepResult train_step(Network& net, Optimizer& opt, int64_t n, uint64_t batch_seed) {
  fill_batch(net, batch_seed);
  net.forward(n, true);
  StepResult r;
  for (size_t t = 0; t < net.tasks().size(); ++t) r.losses.push_back(net.task_loss(t));
  auto totals = net.make_totals();
  net.accumulate(totals);
  for (const auto& t : totals) r.metric_sums.insert(r.metric_sums.end(), t.metric_sums.begin(), t.metric_sums.end());
  net.backward();
  r.grads = host(net.parameters().grads);
  opt.step(net.parameters());
  r.params = host(net.parameters().values);
  return r;
}

// A dataset for the two-input model: input "a" holds k/255 values (it travels as bytes), "b"
// arbitrary floats; `bad_row` >= 0 gets a class label outside the 5 classes.
inline Dataset two_input_data(int64_t n, uint64_t seed, int64_t bad_row = -1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(n * 13)), b(static_cast<size_t>(n * 21));
  std::vector<float> value(static_cast<size_t>(n));
  std::vector<int32_t> cls(static_cast<size_t>(n));
  for (float& x : a) x = float(rng() % 256) / 255.0f;
  for (float& x : b) x = uniform(rng);
  for (int64_t i = 0; i < n; ++i) {
    // Learnable: the class follows the first features.
    cls[size_t(i)] = int32_t((a[size_t(i * 13)] > 0.5f) * 2 + (b[size_t(i * 21)] > 0.0f));
    value[size_t(i)] = 0.5f * b[size_t(i * 21 + 1)];
  }
  if (bad_row >= 0) cls[size_t(bad_row)] = 9;
  Dataset d;
  d.inputs = {{"a", Tensor::from_vector({n, 13}, a)}, {"b", Tensor::from_vector({n, 21}, b)}};
  d.targets = {{"class", Tensor::from_vector({n}, cls)}, {"value", Tensor::from_vector({n, 1}, value)}};
  return d;
}

inline std::vector<EpochLog> fit_on(Device device, const Dataset& data, int epochs, double split,
                             bool graphs = true, std::vector<float>* parameters = nullptr,
                             const Callbacks& callbacks = {},
                             const std::string& balancer = "static") {
  Network net(two_input_model(), two_input_tasks(), options_on(device));
  BalancerOptions b;
  b.name = balancer;
  net.fan_out().set_balancer(make_balancer(b));
  Adam adam;
  Trainer trainer(net, adam);
  FitOptions fit;
  fit.epochs = epochs;
  fit.batch_size = kBatch;
  fit.validation_split = split;
  fit.seed = 3;
  fit.cuda_graphs = graphs;
  fit.callbacks = callbacks;
  auto logs = trainer.fit(data, fit);
  if (parameters) *parameters = net.parameters().values.to_vector<float>();
  return logs;
}

}  // namespace polytask
