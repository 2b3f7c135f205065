// Helpers shared by the engine tests: seeded batches for a network's inputs and targets,
// flat parameter read/write, a whole-network central-difference gradient check (per parameter,
// so a failure names the parameter), and error-message assertions.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/dataset.h"
#include "engine/layers.h"
#include "engine/network.h"
#include "kernels/error.h"
#include "tests/support/gradcheck.h"

namespace polytask::testing {

// Writes seeded uniform values into every element of a CPU F64/F32 tensor.
inline void fill_uniform(const Tensor& t, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  const auto v = random_vector<double>(size_t(t.numel()), seed, lo, hi);
  if (t.dtype() == DType::F64) {
    std::memcpy(t.data<double>(), v.data(), v.size() * sizeof(double));
  } else {
    float* p = t.data<float>();
    for (size_t i = 0; i < v.size(); ++i) p[i] = float(v[i]);
  }
}

// Fills every model input of `net` (all max_batch rows) with uniform values in [-1, 1].
inline void fill_inputs(Network& net, uint64_t seed) {
  for (size_t i = 0; i < net.model().graph().inputs.size(); ++i)
    fill_uniform(net.input_buffer(i), seed + 1000 * i);
}

// Fills every task's targets: class indices in [0, classes) for class-index tasks, one-hot-ish
// soft rows for cross-entropy with value targets, [0, 1] for BCE, [-1, 1] for MSE.
inline void fill_targets(Network& net, uint64_t seed) {
  for (size_t t = 0; t < net.tasks().size(); ++t) {
    const Task& task = net.tasks()[t];
    const Tensor& target = net.target_buffer(t);
    const uint64_t s = seed + 7919 * t;
    if (target.dtype() == DType::I32) {
      const int64_t classes = net.model().output(task.output_name()).value.shape()[0];
      std::mt19937_64 rng(s);
      int32_t* p = target.data<int32_t>();
      for (int64_t i = 0; i < target.numel(); ++i) p[i] = int32_t(rng() % uint64_t(classes));
    } else if (task.loss == LossKind::MeanSquaredError) {
      fill_uniform(target, s);
    } else if (task.loss == LossKind::BinaryCrossEntropy) {
      fill_uniform(target, s, 0.0, 1.0);
    } else {
      // Soft target rows for cross-entropy: positive, each row summing to 1.
      fill_uniform(target, s, 0.1, 1.0);
      const int64_t rows = target.dim(0), classes = target.numel() / rows;
      double* p = target.data<double>();
      for (int64_t r = 0; r < rows; ++r) {
        double sum = 0;
        for (int64_t j = 0; j < classes; ++j) sum += p[r * classes + j];
        for (int64_t j = 0; j < classes; ++j) p[r * classes + j] /= sum;
      }
    }
  }
}

inline void fill_batch(Network& net, uint64_t seed) {
  fill_inputs(net, seed);
  fill_targets(net, seed + 17);
}

inline std::vector<double> values_of(const Tensor& t) {
  if (t.dtype() == DType::F64) return t.to_vector<double>();
  const auto f = t.to_vector<float>();
  return std::vector<double>(f.begin(), f.end());
}

inline std::vector<double> flat_params(const Network& net) { return values_of(net.parameters().values); }
inline std::vector<double> flat_grads(const Network& net) { return values_of(net.parameters().grads); }

inline const Parameter& find_parameter(const Network& net, const std::string& name) {
  for (const Parameter* p : net.parameters().all)
    if (p->name == name) return *p;
  throw Error("test: no parameter named '" + name + "'");
}

// One training forward + backward at a fixed step (the dropout masks key on it); returns the
// total loss.
inline double train_pass(Network& net, int64_t n, uint64_t step = 0) {
  net.set_step(step);
  net.forward(n, true);
  const double loss = net.total_loss();
  net.backward();
  return loss;
}

// Central differences of net.total_loss() (training forward at a fixed step, rows [0, n))
// against backward, for every element of every trainable parameter. The input batch and the
// targets must already be filled.
inline ::testing::AssertionResult check_network_gradients(Network& net, int64_t n,
                                                          uint64_t step = 0,
                                                          GradCheckOptions opt = {}) {
  train_pass(net, n, step);
  const auto analytic_all = flat_grads(net);
  size_t checked = 0;
  int64_t at = 0;
  for (Parameter* p : net.parameters().all) {
    if (!p->trainable) continue;
    const int64_t count = p->shape.numel();
    std::vector<double> x = p->value.to_vector<double>();
    const std::vector<double> analytic(analytic_all.begin() + at, analytic_all.begin() + at + count);
    at += count;
    double* dst = p->value.data<double>();
    const auto objective = [&] {
      std::memcpy(dst, x.data(), x.size() * sizeof(double));
      net.set_step(step);
      net.forward(n, true);
      return net.total_loss();
    };
    auto result = check_gradient(p->name, x, analytic, objective, opt);
    std::memcpy(dst, x.data(), x.size() * sizeof(double));  // restore
    if (!result) return result;
    checked += size_t(count);
  }
  if (checked == 0) return ::testing::AssertionFailure() << "the network has no trainable parameters";
  return ::testing::AssertionSuccess() << checked << " parameter elements checked";
}

// Runs `f`, expecting a polytask::Error; returns its message ("" and a test failure otherwise).
inline std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected polytask::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected polytask::Error, nothing was thrown";
  return "";
}

inline ::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

inline NetworkOptions f64_options(int64_t max_batch, uint64_t seed = 1) {
  NetworkOptions o;
  o.max_batch = max_batch;
  o.dtype = DType::F64;
  o.seed = seed;
  return o;
}

// The reference two-head model, small enough for whole-model gradient checks:
//   image (2, 7, 9) -> conv relu "c1" -> conv "c2" -> add(c1, c2) (residual) -> max_pool
//   -> flatten -> dense relu "h" -> "proj" called twice (shared weights):
//   a = proj(h), b = proj(relu(a)), z = add(a, b) "shared"  (the fan-out)
//   heads: "digit" dense(5) for softmax-CE, "size" dense(1) for MSE.
inline Model two_head_model() {
  using namespace layers;
  ModelBuilder b;
  Value x = b.input("image", {2, 7, 9});
  Value c1 = conv2d(3, 3, {.padding = Padding::Same, .activation = Activation::ReLU, .name = "c1"})(x);
  Value c2 = conv2d(3, 3, {.padding = Padding::Same, .name = "c2"})(c1);
  Value r = add("residual")({c1, c2});
  Value p = max_pool2d(2, 0, "pool")(r);  // (3, 3, 4)
  Value h = dense(8, Activation::ReLU, "h")(flatten("flatten")(p));
  LayerRef proj = dense(8, Activation::None, "proj");
  Value a = proj(h);
  Value a2 = proj(relu("proj_relu")(a));
  Value z = add("shared")({a, a2});
  Value digit = dense(5, Activation::None, "digit_logits")(z);
  Value size = dense(1, Activation::None, "size_out")(z);
  return b.build({{"digit", digit}, {"size", size}});
}

inline std::vector<Task> two_head_tasks(double w_digit = 1.0, double w_size = 0.5) {
  Task digit;
  digit.name = "digit";
  digit.loss = LossKind::SoftmaxCrossEntropy;
  digit.weight = w_digit;
  Task size;
  size.name = "size";
  size.loss = LossKind::MeanSquaredError;
  size.weight = w_size;
  return {digit, size};
}

// Data for two_head_model(): image (n, 2, 7, 9) uniform in [-1, 1), "digit" cycling through its
// 5 classes, "size" uniform, each from its own fixed seed.
inline Dataset two_head_dataset(int64_t n) {
  Dataset d;
  Tensor image = Tensor::empty({n, 2, 7, 9}, DType::F32);
  fill_uniform(image, 77);
  std::vector<int32_t> digit(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) digit[size_t(i)] = int32_t(i % 5);
  Tensor size = Tensor::empty({n, 1}, DType::F32);
  fill_uniform(size, 78);
  d.inputs.push_back({"image", image});
  d.targets.push_back({"digit", Tensor::from_vector<int32_t>({n}, digit)});
  d.targets.push_back({"size", size});
  return d;
}

}  // namespace polytask::testing
