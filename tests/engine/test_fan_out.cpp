// The fan-out point: the trunk runs once per step, per-task gradients meet at z as
// dz = Σ_t w_t · ∂L_t/∂z, loss weights change the step without a rebuild, and the plan names
// the representation and the heads.
#include "engine/fan_out.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "engine/layers.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

using namespace layers;
using testing::all_close;
using testing::contains;
using testing::error_message;
using testing::f64_options;
using testing::fill_batch;
using testing::flat_grads;
using testing::flat_params;
using testing::train_pass;

constexpr int64_t kBatch = 5;

std::map<std::string, int64_t> forward_counts(const Network& net) {
  std::map<std::string, int64_t> counts;
  for (const auto& layer : net.model().graph().layers)
    counts[layer->name()] = net.forward_calls(layer->name());
  return counts;
}

// How many times each layer object is called in the graph.
std::map<std::string, int64_t> calls_per_layer(const Network& net) {
  std::map<std::string, int64_t> calls;
  for (const auto& node : net.model().graph().nodes) ++calls[node.layer->name()];
  return calls;
}

TEST(FanOut, EveryLayerCallRunsForwardOncePerTrainingStep) {
  Network net(testing::two_head_model(), testing::two_head_tasks(), f64_options(kBatch));
  fill_batch(net, 1);
  const auto calls = calls_per_layer(net);
  ASSERT_EQ(calls.at("proj"), 2);  // the shared-weights layer: two calls, two forwards a step
  for (const auto& [name, count] : forward_counts(net)) EXPECT_EQ(count, 0) << name;
  for (int64_t step = 1; step <= 3; ++step) {
    net.forward(kBatch, true);
    net.backward();
    for (const auto& [name, count] : forward_counts(net))
      EXPECT_EQ(count, step * calls.at(name)) << name << " after step " << step;
  }
  // The trunk layers and both heads are all counted.
  const auto counts = forward_counts(net);
  for (const char* name : {"c1", "c1_relu", "c2", "residual", "pool", "flatten", "h", "h_relu",
                           "proj_relu", "shared", "digit_logits", "size_out"})
    EXPECT_EQ(counts.at(name), 3) << name;
  // An inference forward also runs each call once; backward runs none.
  net.forward(kBatch, false);
  for (const auto& [name, count] : forward_counts(net)) EXPECT_EQ(count, 4 * calls.at(name)) << name;
}

// Gradients of the same batch at weights (w0, w1), set through fan_out().set_weight.
std::vector<double> gradients_at(Network& net, double w0, double w1) {
  net.fan_out().set_weight(size_t(0), w0);
  net.fan_out().set_weight("size", w1);
  train_pass(net, kBatch);
  return flat_grads(net);
}

TEST(FanOut, GradientIsTheWeightedSumOfPerTaskGradients) {
  Network net(testing::two_head_model(), testing::two_head_tasks(), f64_options(kBatch, 2));
  fill_batch(net, 2);
  const auto g_a = gradients_at(net, 1, 0);
  const auto g_b = gradients_at(net, 0, 1);
  for (const auto& [w0, w1] : {std::pair{0.7, 1.9}, std::pair{1.0, 0.5}, std::pair{3.0, 0.0}}) {
    const auto g = gradients_at(net, w0, w1);
    std::vector<double> expected(g.size());
    for (size_t i = 0; i < g.size(); ++i) expected[i] = w0 * g_a[i] + w1 * g_b[i];
    // The same products summed in another order: a few ulps of the largest term.
    EXPECT_TRUE(all_close(g, expected, 1e-12, 1e-15)) << "weights " << w0 << ", " << w1;
  }
  // The weights really reach the trunk: g_a and g_b differ in the trunk parameters.
  const Parameter& c1 = testing::find_parameter(net, "c1.weight");
  const auto offset = size_t(c1.value.data<double>() - net.parameters().values.data<double>());
  EXPECT_NE(g_a[offset], g_b[offset]);
  EXPECT_NE(g_a[offset], 0.0);
  EXPECT_NE(g_b[offset], 0.0);
}

TEST(FanOut, TotalLossIsTheWeightedSumOfTaskLosses) {
  Network net(testing::two_head_model(), testing::two_head_tasks(1.0, 0.5), f64_options(kBatch));
  fill_batch(net, 3);
  net.forward(kBatch, true);
  EXPECT_DOUBLE_EQ(net.total_loss(), net.task_loss(0) + 0.5 * net.task_loss(1));
  net.fan_out().set_weight("digit", 2.0);  // takes effect without a rebuild or a new forward
  EXPECT_DOUBLE_EQ(net.total_loss(), 2.0 * net.task_loss(0) + 0.5 * net.task_loss(1));
  EXPECT_EQ(net.fan_out().weight(0), 2.0);
  EXPECT_EQ(net.fan_out().loss_seed(0), 2.0);
}

TEST(FanOut, TaskGradientsScaleWithTheirWeight) {
  Network net(testing::two_head_model(), testing::two_head_tasks(), f64_options(kBatch, 4));
  fill_batch(net, 4);
  gradients_at(net, 1, 1);
  const auto unit_a = net.fan_out().task_gradient(0).to_vector<double>();
  const auto unit_b = net.fan_out().task_gradient(1).to_vector<double>();
  EXPECT_EQ(net.fan_out().task_gradient(0).shape(), (Shape{kBatch, 8}));
  gradients_at(net, 0.25, 3.0);
  const auto a = net.fan_out().task_gradient(0).to_vector<double>();
  const auto b = net.fan_out().task_gradient(1).to_vector<double>();
  std::vector<double> expected_a(a.size()), expected_b(b.size());
  for (size_t i = 0; i < a.size(); ++i) expected_a[i] = 0.25 * unit_a[i], expected_b[i] = 3.0 * unit_b[i];
  // One extra multiplication by the seed inside the loss backward, then the head's GEMMs.
  EXPECT_TRUE(all_close(a, expected_a, 1e-13, 1e-17));
  EXPECT_TRUE(all_close(b, expected_b, 1e-13, 1e-17));
  // A zero weight gives an exactly zero task gradient.
  gradients_at(net, 1.0, 0.0);
  for (double v : net.fan_out().task_gradient(1).to_vector<double>()) EXPECT_EQ(v, 0.0);
}

TEST(FanOut, TaskGradientMatchesCentralDifferencesAtZ) {
  // z is a model input here, so the per-task gradients the fan-out hands out can be checked
  // against central differences of w_t · L_t with respect to z.
  ModelBuilder b;
  Value z = b.input("z", {6});
  Value a = dense(4, Activation::None, "a_out")(dense(5, Activation::ReLU, "a_hidden")(z));
  Value c = dense(2, Activation::None, "c_out")(z);
  Network net(b.build({{"a", a}, {"c", c}}),
              {[] { Task t; t.name = "a"; t.weight = 0.8; return t; }(),
               [] { Task t; t.name = "c"; t.loss = LossKind::MeanSquaredError; t.weight = 1.7; return t; }()},
              f64_options(kBatch, 5));
  EXPECT_EQ(net.fan_out().representation(), "z");
  fill_batch(net, 5);
  const int64_t n = kBatch - 1;  // a short batch: task_gradient has n rows
  train_pass(net, n);
  for (size_t t = 0; t < 2; ++t) {
    const Tensor g = net.fan_out().task_gradient(t);
    ASSERT_EQ(g.shape(), (Shape{n, 6}));
    const auto analytic = g.to_vector<double>();
    double* zs = net.input_buffer(0).data<double>();
    std::vector<double> x(zs, zs + n * 6);
    const double w = net.fan_out().weight(t);
    const auto objective = [&] {
      std::copy(x.begin(), x.end(), zs);
      net.forward(n, true);
      return w * net.task_loss(t);
    };
    EXPECT_TRUE(testing::check_gradient(net.fan_out().task_name(t), x, analytic, objective));
    // check_gradient restores x but leaves the last perturbation in the input buffer.
    std::copy(x.begin(), x.end(), zs);
  }
}

TEST(FanOut, CombinedGradientAtZIsTheSumOfTaskGradients) {
  // The trunk is one dense layer straight from the input, so its gradients follow from dz by
  // hand: dW[u][f] = Σ_n dz[n][u] · x[n][f], db[u] = Σ_n dz[n][u]. With dz = Σ_t task_gradient(t)
  // this checks FanOut::combine and the trunk backward that consumes it.
  ModelBuilder b;
  Value x = b.input("x", {7});
  Value z = dense(4, Activation::None, "shared")(x);
  Value a = dense(3, Activation::None, "a_out")(relu()(z));
  Value c = dense(2, Activation::None, "c_out")(z);
  Value e = dense(1, Activation::None, "e_out")(z);
  std::vector<Task> tasks(3);
  tasks[0].name = "a";
  tasks[1].name = "c", tasks[1].loss = LossKind::MeanSquaredError, tasks[1].weight = 0.5;
  tasks[2].name = "e", tasks[2].loss = LossKind::BinaryCrossEntropy, tasks[2].weight = 1.5;
  Network net(b.build({{"a", a}, {"c", c}, {"e", e}}), tasks, f64_options(kBatch, 6));
  EXPECT_EQ(net.fan_out().representation(), "shared");
  fill_batch(net, 6);
  const int64_t n = kBatch - 2;
  train_pass(net, n);
  std::vector<double> dz(size_t(n * 4), 0.0);
  for (size_t t = 0; t < 3; ++t) {
    const auto g = net.fan_out().task_gradient(t).to_vector<double>();
    for (size_t i = 0; i < dz.size(); ++i) dz[i] += g[i];
  }
  const auto xs = net.input_buffer(0).to_vector<double>();
  std::vector<double> dw(4 * 7, 0.0), db(4, 0.0);
  for (size_t r = 0; r < size_t(n); ++r)
    for (size_t u = 0; u < 4; ++u) {
      db[u] += dz[r * 4 + u];
      for (size_t f = 0; f < 7; ++f) dw[u * 7 + f] += dz[r * 4 + u] * xs[r * 7 + f];
    }
  // Sums of n = 3 products: rounding only.
  EXPECT_TRUE(all_close(testing::find_parameter(net, "shared.weight").grad.to_vector<double>(), dw,
                        1e-13, 1e-16));
  EXPECT_TRUE(all_close(testing::find_parameter(net, "shared.bias").grad.to_vector<double>(), db,
                        1e-13, 1e-16));
}

// One optimiser step on the two-head model, the size task at weight 0.
template <class Opt, class Params>
std::vector<double> step_once(Network& net, Params params) {
  fill_batch(net, 7);
  train_pass(net, kBatch);
  Opt opt(params);
  opt.step(net.parameters());
  return flat_params(net);
}

template <class Opt, class Params>
void check_zero_weight_step(Params params) {
  // Network 1: both tasks, size at weight 0. Network 2: the same model and seed with only the
  // digit task (size_out then runs forward only and gets no gradient).
  Network both(testing::two_head_model(), testing::two_head_tasks(1.0, 0.0), f64_options(kBatch, 8));
  Network digit_only(testing::two_head_model(), {testing::two_head_tasks()[0]}, f64_options(kBatch, 8));
  const auto before = flat_params(both);
  ASSERT_EQ(before, flat_params(digit_only));  // same graph, same seed: same initial values
  const auto after_both = step_once<Opt>(both, params);
  const auto after_single = step_once<Opt>(digit_only, params);
  // The size head is untouched: its gradient is exactly zero.
  for (const char* name : {"size_out.weight", "size_out.bias"}) {
    const Parameter& p = testing::find_parameter(both, name);
    const auto offset = size_t(p.value.data<double>() - both.parameters().values.data<double>());
    for (int64_t i = 0; i < p.shape.numel(); ++i)
      EXPECT_EQ(after_both[offset + size_t(i)], before[offset + size_t(i)]) << name << " " << i;
    for (double g : p.grad.to_vector<double>()) EXPECT_EQ(g, 0.0) << name;
  }
  // Everything else moved exactly as in the single-task network: dz = g_digit + 0.
  EXPECT_TRUE(all_close(after_both, after_single, 1e-14, 1e-16));
  EXPECT_NE(after_both, before);
}

TEST(FanOut, ZeroWeightStepEqualsSingleTaskStepSgd) {
  kernels::SgdParams p;
  p.lr = 0.1f;
  check_zero_weight_step<Sgd>(p);
}

TEST(FanOut, ZeroWeightStepEqualsSingleTaskStepAdam) {
  kernels::AdamParams p;
  p.lr = 0.01f;
  check_zero_weight_step<Adam>(p);
}

TEST(FanOut, WeightChangesTheSgdStepProportionally) {
  // Plain SGD is linear in the gradient: doubling both weights doubles every update.
  const auto delta = [](double scale) {
    Network net(testing::two_head_model(), testing::two_head_tasks(1.0 * scale, 0.5 * scale),
                f64_options(kBatch, 9));
    const auto before = flat_params(net);
    kernels::SgdParams p;
    p.lr = 0.05f;
    const auto after = step_once<Sgd>(net, p);
    std::vector<double> d(after.size());
    for (size_t i = 0; i < d.size(); ++i) d[i] = after[i] - before[i];
    return d;
  };
  const auto d1 = delta(1.0), d2 = delta(2.0);
  std::vector<double> expected(d1.size());
  for (size_t i = 0; i < d1.size(); ++i) expected[i] = 2 * d1[i];
  // The differences lose digits to the parameter magnitudes (|p| <= ~1): abs 1e-15.
  EXPECT_TRUE(all_close(d2, expected, 1e-10, 1e-15));
}

TEST(FanOut, PlanSummaryNamesFanOutTrunkAndHeads) {
  Network net(testing::two_head_model(), testing::two_head_tasks(1.0, 0.5), f64_options(kBatch));
  const std::string plan = net.plan_summary();
  EXPECT_TRUE(contains(plan, "shared representation (fan-out): shared (8,)")) << plan;
  EXPECT_TRUE(contains(plan, "trunk: c1 ")) << plan;  // layer calls in forward order
  // c1's ReLU is the conv's only reader: it runs in the conv's pass (the whole-model gradient
  // checks cover the fused path's numbers).
  EXPECT_TRUE(contains(plan, "trunk: c1 (+relu) c2 residual")) << plan;
  for (const char* trunk : {" c1 ", " c2 ", " residual ", " pool ", " h ", " proj ", " proj#1 ", " shared"})
    EXPECT_TRUE(contains(plan.substr(0, plan.find("head")), trunk)) << trunk << "\n" << plan;
  EXPECT_TRUE(contains(plan, "head 'digit' (softmax_cross_entropy, weight 1): digit_logits")) << plan;
  EXPECT_TRUE(contains(plan, "head 'size' (mse, weight 0.5): size_out")) << plan;
  EXPECT_EQ(net.fan_out().task_count(), 2u);
  EXPECT_EQ(net.fan_out().task_name(1), "size");
  EXPECT_EQ(net.fan_out().task_index("size"), 1u);
}

TEST(FanOut, AutoDetectedFanOutIsTheSharedDenseLayer) {
  ModelBuilder b;
  Value x = b.input("image", {1, 6, 6});
  Value f = flatten()(max_pool2d(2)(conv2d(2, 3, {.activation = Activation::ReLU})(x)));
  Value z = dense(6, DenseOptions{.name = "shared"})(f);
  Network net(b.build({{"a", dense(3)(z)}, {"b", dense(2)(relu()(z))}}),
              {[] { Task t; t.name = "a"; return t; }(),
               [] { Task t; t.name = "b"; t.loss = LossKind::MeanSquaredError; return t; }()},
              f64_options(4));
  EXPECT_EQ(net.fan_out().representation(), "shared");
  EXPECT_TRUE(contains(net.plan_summary(), "(fan-out): shared (6,)"));
  // Naming it explicitly gives the same plan.
  ModelBuilder b2;
  Value x2 = b2.input("image", {1, 6, 6});
  Value z2 = dense(6, DenseOptions{.name = "shared"})(
      flatten()(max_pool2d(2)(conv2d(2, 3, {.activation = Activation::ReLU})(x2))));
  NetworkOptions o = f64_options(4);
  o.fan_out = "shared";
  Network explicit_net(b2.build({{"a", dense(3)(z2)}, {"b", dense(2)(relu()(z2))}}), net.tasks(), o);
  EXPECT_EQ(explicit_net.plan_summary(), net.plan_summary());
}

TEST(FanOut, ExplicitFanOutThatDoesNotDominateThrows) {
  NetworkOptions o = f64_options(4);
  o.fan_out = "c2";  // the residual add bypasses c2
  const std::string message =
      error_message([&] { Network net(testing::two_head_model(), testing::two_head_tasks(), o); });
  EXPECT_TRUE(contains(message, "'c2'"));
  EXPECT_TRUE(contains(message, "not a shared representation"));
}

TEST(FanOut, ExplicitFanOutThatDoesNotExistThrows) {
  NetworkOptions o = f64_options(4);
  o.fan_out = "nowhere";
  const std::string message =
      error_message([&] { Network net(testing::two_head_model(), testing::two_head_tasks(), o); });
  EXPECT_TRUE(contains(message, "'nowhere'"));
}

TEST(FanOut, HeadsSharingALayerBelowTheFanOutThrow) {
  NetworkOptions o = f64_options(4);
  o.fan_out = "h";  // h_relu, proj, ... would then belong to both heads
  const std::string message =
      error_message([&] { Network net(testing::two_head_model(), testing::two_head_tasks(), o); });
  EXPECT_TRUE(contains(message, "'h_relu'"));  // the first shared layer call
  EXPECT_TRUE(contains(message, "'digit'"));
  EXPECT_TRUE(contains(message, "'size'"));
  EXPECT_TRUE(contains(message, "'h'"));
}

TEST(FanOut, AUserFanOutThatHeadsShareLayersBelowIsRefused) {
  // Two tasks on one output and a third elsewhere. Left to itself the plan cuts at both
  // values (NetworkGradients.ThreeTasksTwoOnOneOutputCutAtTwoValues); told that the fan-out is
  // "hidden_relu", the output's layer would belong to two heads below it: refused, named.
  ModelBuilder b;
  Value x = b.input("x", {6});
  Value z = dense(5, Activation::ReLU, "hidden")(x);
  Model m = b.build({{"logits", dense(4, Activation::None, "logits")(z)},
                     {"value", dense(2, Activation::None, "value")(z)}});
  Task hard, soft, value;
  hard.name = "hard", hard.output = "logits";
  soft.name = "soft", soft.output = "logits", soft.target = TargetKind::Values;
  value.name = "value", value.loss = LossKind::MeanSquaredError;
  NetworkOptions options = f64_options(4);
  options.fan_out = "hidden_relu";
  const std::string message = error_message([&] { Network net(m, {hard, soft, value}, options); });
  EXPECT_TRUE(contains(message, "'logits'"));
  EXPECT_TRUE(contains(message, "'hard'"));
  EXPECT_TRUE(contains(message, "'soft'"));
}

TEST(FanOut, SetWeightValidatesAndNamesTasks) {
  Network net(testing::two_head_model(), testing::two_head_tasks(), f64_options(4));
  EXPECT_TRUE(contains(error_message([&] { net.fan_out().set_weight("size", -0.5); }), "'size'"));
  EXPECT_THROW(net.fan_out().set_weight(size_t(0), std::nan("")), Error);
  EXPECT_THROW(net.fan_out().set_weight(size_t(0), INFINITY), Error);
  EXPECT_EQ(net.fan_out().weight(1), 0.5);  // unchanged by the failed calls
  const std::string message = error_message([&] { net.fan_out().set_weight("colour", 1.0); });
  EXPECT_TRUE(contains(message, "'colour'"));
  EXPECT_TRUE(contains(message, "digit, size"));
}

}  // namespace
}  // namespace polytask
