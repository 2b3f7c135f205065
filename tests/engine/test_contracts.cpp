// The engine's contracts:
//  - the layer contract (layer.h): forward overwrites y, backward writes dx and parameter
//    gradients by their GradMode — tested on every layer by hand-built LayerCalls with
//    poisoned (NaN) and pre-seeded buffers;
//  - the plan: every output and every parameter gradient is written each step (poisoned
//    buffers come back finite), no stale accumulation across steps, rows past the batch are
//    left alone, buffers never move;
//  - BatchNorm training vs inference and the Keras running-average rule;
//  - Dropout masks keyed on (seed, step) and the global row, identity at inference;
//  - determinism: same seed, bit-identical losses.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "engine/layers.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

using namespace layers;
using testing::all_close;
using testing::all_finite;
using testing::f64_options;
using testing::fill_batch;
using testing::fill_uniform;
using testing::find_parameter;
using testing::flat_grads;
using testing::train_pass;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- the layer contract, call by call --------------------------------------------------

struct LayerHarness {
  std::shared_ptr<Layer> layer;
  std::vector<Shape> in_shapes;  // per sample
  Shape out_shape;
  int64_t batch = 3;
  std::vector<Tensor> x, aux, dx;
  Tensor y, dy, workspace;

  LayerHarness(const LayerRef& ref, const std::vector<Shape>& inputs, uint64_t seed) {
    ModelBuilder b;
    std::vector<Value> values;
    for (size_t i = 0; i < inputs.size(); ++i) values.push_back(b.input("x" + std::to_string(i), inputs[i]));
    const Value out = ref(values);
    layer = ref.ptr();
    in_shapes = inputs;
    out_shape = out.shape();
    for (const auto& p : layer->parameters()) {
      p->value = Tensor::empty(p->shape, DType::F64);
      // Positive variances for BatchNorm's running statistics; anything for the rest.
      fill_uniform(p->value, seed++, p->trainable ? -1.0 : 0.5, 1.0);
      if (p->trainable) p->grad = Tensor::empty(p->shape, DType::F64);
    }
    for (const Shape& s : inputs) {
      x.push_back(Tensor::empty(s.with_batch(batch), DType::F64));
      fill_uniform(x.back(), seed++);
      dx.push_back(Tensor::empty(s.with_batch(batch), DType::F64));
    }
    for (const AuxSpec& spec : layer->aux(in_shapes, batch))
      aux.push_back(Tensor::empty(spec.shape, spec.integer ? DType::I32 : DType::F64));
    workspace = Tensor::empty({std::max<int64_t>(1, layer->workspace_elements(in_shapes, batch))},
                              DType::F64);
    y = Tensor::empty(out_shape.with_batch(batch), DType::F64);
    dy = Tensor::empty(out_shape.with_batch(batch), DType::F64);
    fill_uniform(dy, seed++);
  }

  LayerCall call(bool training = true) const {
    LayerCall c;
    c.x = x;
    c.y = y;
    c.aux = aux;
    c.workspace = workspace;
    c.training = training;
    c.seed = 42;
    c.stream = 7;
    return c;
  }

  void forward() { layer->forward(call()); }

  void backward(const std::vector<GradMode>& dx_mode, GradMode param_mode) {
    LayerCall c = call();
    c.dy = dy;
    c.dx = dx;
    c.dx_mode = dx_mode;
    c.param_mode = param_mode;
    layer->backward(c);
  }

  std::vector<std::vector<double>> grads() const {
    std::vector<std::vector<double>> out;
    for (const auto& t : dx) out.push_back(t.to_vector<double>());
    for (const auto& p : layer->parameters())
      if (p->trainable) out.push_back(p->grad.to_vector<double>());
    return out;
  }
  std::vector<Tensor> grad_tensors() const {
    std::vector<Tensor> out = dx;
    for (const auto& p : layer->parameters())
      if (p->trainable) out.push_back(p->grad);
    return out;
  }
};

struct LayerCase {
  const char* label;
  std::function<LayerRef()> make;
  std::vector<Shape> inputs;
};

const std::vector<LayerCase>& layer_cases() {
  static const std::vector<LayerCase> cases = {
      {"conv2d_valid", [] { return conv2d(4, 3); }, {{3, 7, 9}}},
      {"conv2d_same_s2", [] { return conv2d(2, 3, {.stride = 2, .padding = Padding::Same}); }, {{3, 7, 9}}},
      {"max_pool2d", [] { return max_pool2d(2); }, {{3, 7, 9}}},
      {"max_pool2d_overlapping", [] { return max_pool2d(3, 1); }, {{2, 5, 6}}},
      {"max_pool2d_gaps", [] { return max_pool2d(2, 3); }, {{2, 8, 7}}},  // stride > window
      {"conv2d_1x1_s2", [] { return conv2d(2, 1, {.stride = 2}); }, {{3, 5, 6}}},  // skips pixels
      {"dense", [] { return dense(5); }, {{11}}},
      {"relu", [] { return relu(); }, {{3, 7, 9}}},
      {"flatten", [] { return flatten(); }, {{3, 7, 9}}},
      {"add", [] { return add(); }, {{3, 4, 5}, {3, 4, 5}}},
      {"concat", [] { return concat(); }, {{2, 4, 5}, {3, 4, 5}, {1, 4, 5}}},
      {"batch_norm_image", [] { return batch_norm(); }, {{3, 4, 5}}},
      {"batch_norm_features", [] { return batch_norm(); }, {{6}}},
      {"dropout", [] { return dropout(0.4); }, {{3, 7, 9}}},
      {"softmax", [] { return softmax(); }, {{7}}},
      {"mixture", [] { return mixture(); }, {{12}, {3}}},  // 3 experts of 4 features
      {"cross_stitch", [] { return cross_stitch(); }, {{3, 4, 5}, {3, 4, 5}, {3, 4, 5}}},
  };
  return cases;
}

class LayerContract : public ::testing::TestWithParam<size_t> {
 protected:
  const LayerCase& layer_case() const { return layer_cases()[GetParam()]; }
};

TEST_P(LayerContract, ForwardOverwritesEveryOutput) {
  LayerHarness h(layer_case().make(), layer_case().inputs, 1);
  h.y.fill(kNaN);
  for (auto& a : h.aux)
    if (a.dtype() == DType::F64) a.fill(kNaN);
  h.forward();
  EXPECT_TRUE(all_finite(h.y.to_vector<double>()));
  // A second forward gives the same output (nothing accumulates into y).
  const auto first = h.y.to_vector<double>();
  h.y.fill(123.0);
  h.forward();
  EXPECT_EQ(h.y.to_vector<double>(), first);
}

TEST_P(LayerContract, BackwardOverwritesOrAccumulatesAsTold) {
  LayerHarness h(layer_case().make(), layer_case().inputs, 2);
  h.forward();
  const size_t n_in = h.dx.size();
  const auto modes = [&](GradMode m) { return std::vector<GradMode>(n_in, m); };

  // Overwrite: every gradient element is written (NaN poison is gone).
  for (auto& g : h.grad_tensors()) g.fill(kNaN);
  h.backward(modes(GradMode::Overwrite), GradMode::Overwrite);
  const auto fresh = h.grads();
  for (size_t i = 0; i < fresh.size(); ++i) EXPECT_TRUE(all_finite(fresh[i])) << "gradient " << i;

  // Accumulate: seeded buffers receive seed + fresh.
  const auto check_mode = [&](GradMode dx_mode, GradMode param_mode) {
    std::vector<std::vector<double>> seeds;
    uint64_t s = 100;
    for (auto& g : h.grad_tensors()) {
      fill_uniform(g, s++, 2.0, 3.0);
      seeds.push_back(g.to_vector<double>());
    }
    h.backward(modes(dx_mode), param_mode);
    const auto got = h.grads();
    for (size_t i = 0; i < got.size(); ++i) {
      const bool accumulate = (i < n_in ? dx_mode : param_mode) == GradMode::Accumulate;
      std::vector<double> expected = fresh[i];
      if (accumulate)
        for (size_t k = 0; k < expected.size(); ++k) expected[k] += seeds[i][k];
      // One extra addition: rounding of the seed's magnitude (~3).
      EXPECT_TRUE(all_close(got[i], expected, 1e-14, 1e-14))
          << "gradient " << i << (i < n_in ? " (input)" : " (parameter)") << " dx "
          << (dx_mode == GradMode::Accumulate ? "accumulate" : "overwrite") << ", params "
          << (param_mode == GradMode::Accumulate ? "accumulate" : "overwrite");
    }
  };
  check_mode(GradMode::Accumulate, GradMode::Accumulate);
  check_mode(GradMode::Accumulate, GradMode::Overwrite);
  check_mode(GradMode::Overwrite, GradMode::Accumulate);
  check_mode(GradMode::Overwrite, GradMode::Overwrite);
}

TEST_P(LayerContract, UndefinedInputGradientIsSkipped) {
  LayerHarness h(layer_case().make(), layer_case().inputs, 3);
  h.forward();
  for (auto& p : h.layer->parameters())
    if (p->trainable) p->grad.fill(kNaN);
  std::vector<Tensor> none(h.dx.size());  // no input needs a gradient
  LayerCall c = h.call();
  c.dy = h.dy;
  c.dx = none;
  const std::vector<GradMode> modes(h.dx.size(), GradMode::Overwrite);
  c.dx_mode = modes;
  EXPECT_NO_THROW(h.layer->backward(c));
  for (auto& p : h.layer->parameters())
    if (p->trainable) {
      EXPECT_TRUE(all_finite(p->grad.to_vector<double>())) << p->name;
    }
}

INSTANTIATE_TEST_SUITE_P(EveryLayer, LayerContract, ::testing::Range(size_t(0), layer_cases().size()),
                         [](const auto& case_info) { return std::string(layer_cases()[case_info.param].label); });

// ---- the plan --------------------------------------------------------------------------

Model bn_dropout_model() {
  ModelBuilder b;
  Value x = b.input("image", {2, 7, 9});
  Value c = conv2d(3, 3, {.name = "c"})(x);
  c = relu()(batch_norm({.name = "bn_trunk"})(c));
  Value z = dense(8, Activation::ReLU, "shared")(dropout(0.3, "drop")(flatten()(max_pool2d(2)(c))));
  LayerRef common = dense(4, Activation::None, "common");  // one layer in both heads
  Value a = dense(5, Activation::None, "a_out")(relu()(batch_norm({.name = "bn_a"})(common(z))));
  Value s = dense(1, Activation::None, "s_out")(common(dropout(0.5, "drop_s")(z)));
  return b.build({{"digit", a}, {"size", s}});
}

struct ModelCase {
  const char* label;
  std::function<Model()> make;
};

class PlanContract : public ::testing::TestWithParam<ModelCase> {};

TEST_P(PlanContract, PoisonedOutputsAndGradientsAreOverwritten) {
  for (DType dt : {DType::F64, DType::F32}) {
    NetworkOptions o = f64_options(4, 1);
    o.dtype = dt;
    Network net(GetParam().make(), testing::two_head_tasks(1.0, 0.5), o);
    fill_batch(net, 1);
    net.forward(4, true);
    net.backward();
    // Poison every output, every parameter gradient and the fan-out's per-task buffers.
    for (const auto& out : net.model().outputs()) net.output(out.name).fill(kNaN);
    net.parameters().grads.fill(kNaN);
    for (size_t t = 0; t < net.tasks().size(); ++t) net.fan_out().task_gradient(t).fill(kNaN);
    net.forward(4, true);
    for (const auto& out : net.model().outputs())
      EXPECT_TRUE(all_finite(testing::values_of(net.output(out.name)))) << out.name;
    EXPECT_TRUE(std::isfinite(net.total_loss()));
    net.backward();
    const auto grads = testing::values_of(net.parameters().grads);
    for (const Parameter* p : net.parameters().all)
      if (p->trainable) {
        EXPECT_TRUE(all_finite(testing::values_of(p->grad))) << p->name << " " << dtype_name(dt);
      }
    EXPECT_TRUE(all_finite(grads));
    for (size_t t = 0; t < net.tasks().size(); ++t)
      EXPECT_TRUE(all_finite(testing::values_of(net.fan_out().task_gradient(t))));
  }
}

TEST_P(PlanContract, RepeatedBackwardGivesIdenticalGradients) {
  Network net(GetParam().make(), testing::two_head_tasks(1.0, 0.5), f64_options(5, 2));
  fill_batch(net, 2);
  train_pass(net, 5, /*step=*/4);
  const auto first = flat_grads(net);
  train_pass(net, 5, /*step=*/4);
  EXPECT_EQ(flat_grads(net), first);  // bit-identical: nothing accumulates across steps
  // A short batch, then the full batch again: still the same.
  train_pass(net, 2, 4);
  train_pass(net, 5, 4);
  EXPECT_EQ(flat_grads(net), first);
}

TEST_P(PlanContract, ShortBatchLeavesRowsPastTheBatchAlone) {
  Network net(GetParam().make(), testing::two_head_tasks(), f64_options(5, 3));
  fill_batch(net, 3);
  net.forward(5, true);
  std::vector<Tensor> full;  // views of all max_batch rows
  for (const auto& out : net.model().outputs()) full.push_back(net.output(out.name));
  for (auto& t : full) t.fill(-777.0);
  net.forward(3, true);
  net.backward();
  for (auto& t : full) {
    const auto v = t.to_vector<double>();
    const size_t row = v.size() / 5;
    for (size_t i = 0; i < v.size(); ++i) {
      if (i < 3 * row) {
        EXPECT_NE(v[i], -777.0) << i;
      } else {
        EXPECT_EQ(v[i], -777.0) << i;
      }
    }
  }
}

TEST_P(PlanContract, BuffersDoNotMoveBetweenSteps) {
  Network net(GetParam().make(), testing::two_head_tasks(), f64_options(4, 4));
  fill_batch(net, 4);
  net.forward(4, true);
  const void* out = net.output("digit").raw();
  const void* values = net.parameters().values.raw();
  const void* grads = net.parameters().grads.raw();
  const void* task_grad = net.fan_out().task_gradient(1).raw();
  Adam adam;
  for (int i = 0; i < 3; ++i) {
    net.forward(i == 1 ? 2 : 4, true);
    net.backward();
    adam.step(net.parameters());
  }
  EXPECT_EQ(net.output("digit").raw(), out);
  EXPECT_EQ(net.parameters().values.raw(), values);
  EXPECT_EQ(net.parameters().grads.raw(), grads);
  EXPECT_EQ(net.fan_out().task_gradient(1).raw(), task_grad);
  EXPECT_EQ(net.step(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Models, PlanContract,
                         ::testing::Values(ModelCase{"two_head", testing::two_head_model},
                                           ModelCase{"bn_dropout_shared_head", bn_dropout_model}),
                         [](const auto& case_info) { return std::string(case_info.param.label); });

// ---- BatchNorm -------------------------------------------------------------------------

// x (features or image) -> batch_norm "bn" -> [flatten] -> dense(3) "y" (MSE); "bn" is also a
// model output so tests can read it.
struct BnNet {
  std::unique_ptr<Network> net;
  explicit BnNet(const Shape& input) {
    ModelBuilder b;
    Value x = b.input("x", input);
    Value bn = batch_norm({.name = "bn"})(x);
    Value f = input.rank() > 1 ? flatten()(bn) : bn;
    Task t;
    t.name = "y";
    t.loss = LossKind::MeanSquaredError;
    net = std::make_unique<Network>(b.build({{"y", dense(3)(f)}, {"bn", bn}}), std::vector<Task>{t},
                                    f64_options(6, 5));
  }
};

// Per-channel batch mean and biased variance of rows [0, n) of (n, c, spatial) data.
void batch_moments(const std::vector<double>& x, int64_t n, int64_t c, std::vector<double>& mean,
                   std::vector<double>& var) {
  const int64_t spatial = int64_t(x.size()) / (n * c);
  mean.assign(size_t(c), 0.0);
  var.assign(size_t(c), 0.0);
  const double count = double(n * spatial);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t s = 0; s < spatial; ++s) mean[size_t(ch)] += x[size_t((r * c + ch) * spatial + s)];
    mean[size_t(ch)] /= count;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t s = 0; s < spatial; ++s) {
        const double d = x[size_t((r * c + ch) * spatial + s)] - mean[size_t(ch)];
        var[size_t(ch)] += d * d;
      }
    var[size_t(ch)] /= count;
  }
}

void check_running_statistics(const Shape& input) {
  BnNet bn(input);
  Network& net = *bn.net;
  const Parameter& rm = find_parameter(net, "bn.running_mean");
  const Parameter& rv = find_parameter(net, "bn.running_var");
  EXPECT_FALSE(rm.trainable);
  EXPECT_FALSE(rv.trainable);
  EXPECT_FALSE(rm.grad.defined());
  const int64_t c = input[0];
  std::vector<double> expected_mean(size_t(c), 0.0), expected_var(size_t(c), 1.0);  // Keras init
  EXPECT_EQ(rm.value.to_vector<double>(), expected_mean);
  EXPECT_EQ(rv.value.to_vector<double>(), expected_var);

  Sgd sgd;
  for (int step = 0; step < 3; ++step) {
    const int64_t n = step == 1 ? 4 : 6;  // a short batch too: only its rows count
    fill_batch(net, 10 + uint64_t(step));
    net.forward(n, true);
    net.backward();
    sgd.step(net.parameters());
    std::vector<double> mean, var;
    batch_moments(net.input_buffer(0).slice(0, n).to_vector<double>(), n, c, mean, var);
    for (size_t ch = 0; ch < size_t(c); ++ch) {
      expected_mean[ch] = 0.99 * expected_mean[ch] + 0.01 * mean[ch];
      expected_var[ch] = 0.99 * expected_var[ch] + 0.01 * var[ch];  // biased variance
    }
    // Sums of <= 72 terms in another order.
    EXPECT_TRUE(all_close(rm.value.to_vector<double>(), expected_mean, 1e-12, 1e-15)) << step;
    EXPECT_TRUE(all_close(rv.value.to_vector<double>(), expected_var, 1e-12, 1e-15)) << step;
  }
  // Inference uses the running statistics (and leaves them alone); training output differs.
  const auto gamma = find_parameter(net, "bn.weight").value.to_vector<double>();
  const auto beta = find_parameter(net, "bn.bias").value.to_vector<double>();
  EXPECT_NE(gamma[0], 1.0);  // the SGD steps moved them, so the check below sees them
  const auto rm_before = rm.value.to_vector<double>();
  net.forward(5, false);
  EXPECT_EQ(rm.value.to_vector<double>(), rm_before);
  const auto x = net.input_buffer(0).slice(0, 5).to_vector<double>();
  const auto y = net.output("bn").to_vector<double>();
  const size_t spatial = x.size() / (5 * size_t(c));
  std::vector<double> expected(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t ch = (i / spatial) % size_t(c);
    expected[i] = gamma[ch] * (x[i] - expected_mean[ch]) / std::sqrt(expected_var[ch] + 1e-3) + beta[ch];
  }
  EXPECT_TRUE(all_close(y, expected, 1e-12, 1e-14));
  net.forward(5, true);
  const auto y_train = net.output("bn").to_vector<double>();
  double max_diff = 0;
  for (size_t i = 0; i < y.size(); ++i) max_diff = std::max(max_diff, std::abs(y_train[i] - y[i]));
  EXPECT_GT(max_diff, 1e-3);
}

TEST(BatchNormContract, RunningStatisticsFollowKerasMomentumFeatures) {
  check_running_statistics({4});
}

TEST(BatchNormContract, RunningStatisticsFollowKerasMomentumImages) {
  check_running_statistics({3, 2, 5});
}

TEST(BatchNormContract, OptimiserDoesNotTouchRunningStatistics) {
  BnNet bn({4});
  Network& net = *bn.net;
  fill_batch(net, 3);
  net.forward(6, true);
  net.backward();
  const auto state = net.parameters().state.to_vector<double>();
  Adam adam;
  adam.step(net.parameters());
  EXPECT_EQ(net.parameters().state.to_vector<double>(), state);
  EXPECT_EQ(net.parameters().state_count, 8);
}

// ---- Dropout ---------------------------------------------------------------------------

struct DropNet {
  std::unique_ptr<Network> net;
  DropNet(uint64_t seed, DType dtype = DType::F64) {
    ModelBuilder b;
    Value x = b.input("x", {40});
    Value d = dropout(0.5, "drop")(x);
    Task t;
    t.name = "y";
    t.loss = LossKind::MeanSquaredError;
    NetworkOptions o = f64_options(4, seed);
    o.dtype = dtype;
    net = std::make_unique<Network>(b.build({{"y", dense(2)(d)}, {"drop", d}}), std::vector<Task>{t}, o);
    fill_batch(*net, 1);
  }
  std::vector<double> output(uint64_t step, bool training = true) {
    net->set_step(step);
    net->forward(4, training);
    return testing::values_of(net->output("drop"));
  }
};

TEST(DropoutContract, MaskIsAFunctionOfSeedAndStep) {
  DropNet a(11), b(11), other_seed(12);
  const auto a3 = a.output(3);
  EXPECT_EQ(a.output(3), a3);  // same network, same step
  EXPECT_EQ(b.output(3), a3);  // another network with the same seed
  EXPECT_NE(a.output(4), a3);  // the next step draws a fresh mask
  EXPECT_NE(other_seed.output(3), a3);
}

TEST(DropoutContract, BackwardAdvancesTheStepAndTheMask) {
  DropNet d(13);
  Network& net = *d.net;
  net.set_step(0);
  net.forward(4, true);
  const auto first = testing::values_of(net.output("drop"));
  net.backward();
  EXPECT_EQ(net.step(), 1u);
  net.forward(4, true);
  EXPECT_NE(testing::values_of(net.output("drop")), first);
}

TEST(DropoutContract, InferenceIsTheIdentity) {
  for (DType dt : {DType::F64, DType::F32}) {
    DropNet d(14, dt);
    EXPECT_EQ(d.output(2, /*training=*/false),
              testing::values_of(d.net->input_buffer(0).slice(0, 4)));
  }
}

// Data-parallel ranks: a Dropout call on rows [3, 3 + n) of a batch, told first_row = 3, draws
// what the call over the whole batch (first_row 0) draws for those rows, forward and backward,
// in double and float. A row has 189 elements, not a multiple of the 4-element Philox block, so
// the slice starts inside one.
TEST(DropoutContract, FirstRowDrawsTheWholeBatchsRows) {
  const Shape sample{3, 7, 9};
  const int64_t rows = 8, first = 3, n = 4;
  for (DType dt : {DType::F64, DType::F32}) {
    SCOPED_TRACE(dtype_name(dt));
    ModelBuilder b;
    const LayerRef ref = dropout(0.4);
    ref(b.input("x", sample));
    Layer& layer = *ref.ptr();
    const auto run = [&](const Tensor& x, const Tensor& dy, int64_t first_row) {
      const std::vector<Tensor> xs{x};
      std::vector<Tensor> dxs{Tensor::empty(x.shape(), dt)};
      const std::vector<GradMode> modes{GradMode::Overwrite};
      dxs[0].fill(kNaN);
      LayerCall c;
      c.x = xs;
      c.y = Tensor::empty(x.shape(), dt);
      c.y.fill(kNaN);
      c.training = true;
      c.seed = 42;
      c.stream = 7;
      c.first_row = first_row;
      layer.forward(c);
      c.dy = dy;
      c.dx = dxs;
      c.dx_mode = modes;
      layer.backward(c);
      return std::pair{testing::values_of(c.y), testing::values_of(dxs[0])};
    };
    const Tensor x = Tensor::empty(sample.with_batch(rows), dt);
    const Tensor dy = Tensor::empty(sample.with_batch(rows), dt);
    fill_uniform(x, 1, 0.5, 1.0);  // never 0, so a dropped element shows
    fill_uniform(dy, 2, 0.5, 1.0);
    const auto [y_all, dx_all] = run(x, dy, 0);
    const auto [y_part, dx_part] =
        run(x.slice(first, first + n), dy.slice(first, first + n), first);
    const int64_t row = sample.numel();
    const auto rows_of = [&](const std::vector<double>& v) {
      return std::vector<double>(v.begin() + first * row, v.begin() + (first + n) * row);
    };
    EXPECT_EQ(y_part, rows_of(y_all));
    EXPECT_EQ(dx_part, rows_of(dx_all));
    // Without first_row the same rows draw another mask (what a rank drew before).
    const auto [y_local, dx_local] = run(x.slice(first, first + n), dy.slice(first, first + n), 0);
    EXPECT_NE(y_local, rows_of(y_all));
    EXPECT_NE(dx_local, rows_of(dx_all));
  }
}

// ---- metrics ---------------------------------------------------------------------------

TEST(MetricsContract, TotalsAccumulateLossAccuracyAndMaeOverBatches) {
  Network net(testing::two_head_model(), testing::two_head_tasks(), f64_options(6, 8));
  auto totals = net.make_totals();
  ASSERT_EQ(totals.size(), 2u);
  double loss_sum[2] = {0, 0}, correct = 0, abs_error = 0;
  int64_t rows = 0;
  for (const int64_t n : {int64_t(6), int64_t(4)}) {
    fill_batch(net, 50 + uint64_t(n));
    net.forward(n, false);
    net.accumulate(totals);
    for (size_t t = 0; t < 2; ++t) loss_sum[t] += net.task_loss(t) * double(n);
    const auto logits = net.output("digit").to_vector<double>();
    const auto labels = net.target_buffer(0).to_vector<int32_t>();
    const auto size = net.output("size").to_vector<double>();
    const auto target = net.target_buffer(1).to_vector<double>();
    for (size_t r = 0; r < size_t(n); ++r) {
      size_t best = 0;
      for (size_t j = 1; j < 5; ++j)
        if (logits[r * 5 + j] > logits[r * 5 + best]) best = j;
      correct += best == size_t(labels[r]);
      abs_error += std::abs(size[r] - target[r]);
    }
    rows += n;
  }
  EXPECT_EQ(totals[0].examples, rows);
  EXPECT_NEAR(totals[0].loss(), loss_sum[0] / double(rows), 1e-14);
  EXPECT_NEAR(totals[1].loss(), loss_sum[1] / double(rows), 1e-14);
  EXPECT_EQ(totals[0].metric(0), correct / double(rows));  // accuracy
  EXPECT_NEAR(totals[1].metric(0), abs_error / double(rows), 1e-14);  // MAE
}

// ---- determinism -----------------------------------------------------------------------

template <class Opt>
std::vector<double> losses_over_steps(DType dtype, uint64_t seed, int steps = 3) {
  NetworkOptions o = f64_options(6, seed);
  o.dtype = dtype;
  Network net(bn_dropout_model(), testing::two_head_tasks(1.0, 0.5), o);
  Opt opt;
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    fill_batch(net, 100 + uint64_t(s));
    net.forward(s == 1 ? 4 : 6, true);
    losses.push_back(net.total_loss());
    net.backward();
    opt.step(net.parameters());
  }
  // The final parameters too.
  for (double v : testing::values_of(net.parameters().values)) losses.push_back(v);
  return losses;
}

TEST(Determinism, SameSeedGivesBitIdenticalTrajectories) {
  for (DType dt : {DType::F32, DType::F64}) {
    EXPECT_EQ(losses_over_steps<Adam>(dt, 5), losses_over_steps<Adam>(dt, 5)) << dtype_name(dt);
    EXPECT_EQ(losses_over_steps<Sgd>(dt, 5), losses_over_steps<Sgd>(dt, 5)) << dtype_name(dt);
    EXPECT_NE(losses_over_steps<Adam>(dt, 5), losses_over_steps<Adam>(dt, 6)) << dtype_name(dt);
  }
}

// The workload's shapes (a 28x28 image through Conv32-BatchNorm-ReLU-Pool, Conv64-ReLU-Pool,
// Dense128, two heads) at a batch large enough for every kernel to split its work: a float
// trajectory is the same to the bit on 1, 2 or 3 threads, so a run repeats exactly on a
// machine with another core count.
TEST(Determinism, TheThreadCountDoesNotChangeTheTrajectory) {
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("image", {1, 28, 28});
    Value c = relu()(batch_norm()(conv2d(32, 3, {.name = "c1"})(x)));
    c = max_pool2d(2)(conv2d(64, 3, {.activation = Activation::ReLU, .name = "c2"})(max_pool2d(2)(c)));
    Value z = dense(128, Activation::ReLU, "shared")(dropout(0.3)(flatten()(c)));
    return b.build({{"digit", dense(5, Activation::None, "digit_out")(z)},
                    {"size", dense(1, Activation::None, "size_out")(z)}});
  };
  const auto trajectory = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    NetworkOptions o = f64_options(40, 7);
    o.dtype = DType::F32;
    Network net(make(), testing::two_head_tasks(1.0, 0.5), o);
    Adam opt;
    std::vector<double> seen;
    for (int step = 0; step < 3; ++step) {
      fill_batch(net, 300 + uint64_t(step));
      net.forward(step == 1 ? 37 : 40, true);
      seen.push_back(net.total_loss());
      net.backward();
      opt.step(net.parameters());
    }
    for (double v : testing::values_of(net.parameters().values)) seen.push_back(v);
    omp_set_num_threads(saved);
    return seen;
  };
  const auto one = trajectory(1);
  EXPECT_EQ(trajectory(2), one);
  EXPECT_EQ(trajectory(3), one);
}

TEST(Determinism, InitializeRedrawsTheSameParameters) {
  Network a(bn_dropout_model(), testing::two_head_tasks(), f64_options(4, 21));
  Network b(bn_dropout_model(), testing::two_head_tasks(), f64_options(4, 22));
  EXPECT_NE(testing::flat_params(a), testing::flat_params(b));
  fill_batch(b, 1);
  train_pass(b, 4);  // moves BatchNorm running statistics and the step
  b.initialize(21);
  EXPECT_EQ(testing::flat_params(b), testing::flat_params(a));
  EXPECT_EQ(b.parameters().state.to_vector<double>(), a.parameters().state.to_vector<double>());
  EXPECT_EQ(b.step(), 0u);
}

}  // namespace
}  // namespace polytask
