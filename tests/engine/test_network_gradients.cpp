// Whole multi-task models end to end in double precision: every trainable parameter's
// gradient from Network::backward against central differences of Network::total_loss()
// (= Σ_t w_t · L_t), on a full batch and on a short one (n < max_batch).
//
// Tolerance: the checker's defaults (rel 1e-6, abs 1e-8). In double, step 1e-6 leaves a
// truncation error ~h² and a rounding error ~1e-16/h ≈ 1e-10 on losses of order 1, far
// below both; any wiring mistake (a missing accumulation, a wrong seed) is of order 1.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "engine/layers.h"
#include "engine/network.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

using namespace layers;
using testing::check_network_gradients;
using testing::f64_options;
using testing::fill_batch;

Task make_task(const std::string& name, LossKind loss, double weight) {
  Task t;
  t.name = name;
  t.loss = loss;
  t.weight = weight;
  return t;
}

// Checks the gradients for batches of max_batch rows and of max_batch - 2 rows.
void check_model(const std::function<Model()>& make_model, const std::vector<Task>& tasks,
                 int64_t max_batch, uint64_t seed, uint64_t step = 0) {
  for (const int64_t n : {max_batch, max_batch - 2}) {
    SCOPED_TRACE(n == max_batch ? "full batch" : "short batch");
    Network net(make_model(), tasks, f64_options(max_batch, seed));
    fill_batch(net, seed * 31 + 7);
    EXPECT_TRUE(check_network_gradients(net, n, step));
  }
}

TEST(NetworkGradients, TwoHeadConvModelWithResidualAndSharedLayer) {
  // digit (softmax-CE, weight 1.0) and size (MSE, weight 0.5).
  check_model(testing::two_head_model, testing::two_head_tasks(1.0, 0.5), 5, 1);
}

TEST(NetworkGradients, TwoHeadConvModelUnequalWeights) {
  check_model(testing::two_head_model, testing::two_head_tasks(0.3, 2.5), 4, 2);
}

TEST(NetworkGradients, PlanOfTheTwoHeadModel) {
  Network net(testing::two_head_model(), testing::two_head_tasks(), f64_options(4));
  EXPECT_EQ(net.fan_out().representation(), "shared");
  // The shared layer's two calls are both in the trunk.
  EXPECT_TRUE(testing::contains(net.plan_summary(), " proj "));
  EXPECT_TRUE(testing::contains(net.plan_summary(), " proj#1 "));
}

Model two_input_model() {
  ModelBuilder b;
  Value a = b.input("a", {7});
  Value c = b.input("b", {5});
  Value ha = dense(6, Activation::ReLU, "ha")(a);
  Value hb = dense(4, Activation::None, "hb")(c);
  Value z = dense(8, Activation::ReLU, "shared")(concat("joined")({ha, hb}));
  return b.build({{"cls", dense(3, Activation::None, "cls_logits")(z)},
                  {"reg", dense(2, Activation::None, "reg_out")(z)}});
}

TEST(NetworkGradients, TwoInputModel) {
  check_model(two_input_model,
              {make_task("cls", LossKind::SoftmaxCrossEntropy, 1.0),
               make_task("reg", LossKind::MeanSquaredError, 0.5)},
              6, 3);
}

TEST(NetworkGradients, TwoInputModelUsesBothInputs) {
  // Each input's rows matter: changing input "b" changes the loss (a wiring check that a
  // gradient check cannot make when an input is silently ignored).
  Network net(two_input_model(),
              {make_task("cls", LossKind::SoftmaxCrossEntropy, 1.0),
               make_task("reg", LossKind::MeanSquaredError, 0.5)},
              f64_options(4, 3));
  fill_batch(net, 5);
  net.forward(4, true);
  const double before = net.total_loss();
  net.input_buffer(net.input_index("b")).data<double>()[0] += 0.5;
  net.forward(4, true);
  EXPECT_NE(net.total_loss(), before);
}

Model heads_with_batchnorm_and_dropout() {
  ModelBuilder b;
  Value x = b.input("image", {1, 7, 9});
  Value c = conv2d(3, 3, {.activation = Activation::ReLU, .name = "c"})(x);  // (3, 5, 7)
  Value p = max_pool2d(2, 0, "pool")(c);                                      // (3, 2, 3)
  Value z = dense(10, Activation::ReLU, "shared")(flatten()(p));
  Value a = dense(6, Activation::None, "a1")(z);
  a = relu("a_relu")(batch_norm({.name = "a_bn"})(a));
  a = dense(4, Activation::None, "a_logits")(dropout(0.3, "a_drop")(a));
  Value bb = dense(1, Activation::None, "b_out")(dropout(0.2, "b_drop")(z));
  return b.build({{"a", a}, {"b", bb}});
}

TEST(NetworkGradients, HeadsWithBatchNormAndDropoutAtAFixedStep) {
  check_model(heads_with_batchnorm_and_dropout,
              {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
               make_task("b", LossKind::MeanSquaredError, 0.5)},
              5, 4, /*step=*/3);
}

// A ReLU that only a max-pool reads has its backward in the pool's (the gradient checks of
// these models cover the fused path); one with a second reader keeps its own.
TEST(NetworkGradients, PlanFusesAReluBackwardIntoTheMaxPoolReadingIt) {
  const Network fused(heads_with_batchnorm_and_dropout(),
                      {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
                       make_task("b", LossKind::MeanSquaredError, 0.5)},
                      f64_options(4));
  EXPECT_TRUE(testing::contains(fused.plan_summary(), "c (+relu) pool (+relu backward) "))
      << fused.plan_summary();
  // two_head_model's conv ReLU "c1" feeds c2 and the residual add; the pool reads the add.
  const Network plain(testing::two_head_model(), testing::two_head_tasks(), f64_options(4));
  EXPECT_FALSE(testing::contains(plain.plan_summary(), "relu backward")) << plain.plan_summary();
}

TEST(NetworkGradients, TrunkWithBatchNormAndDropout) {
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("image", {2, 6, 5});
    Value c = conv2d(4, 3, {.padding = Padding::Same, .name = "c"})(x);
    c = relu()(batch_norm()(c));
    Value z = dense(6, Activation::ReLU, "shared")(dropout(0.25)(flatten()(max_pool2d(2)(c))));
    return b.build({{"p", dense(3)(z)}, {"q", dense(2)(z)}});
  };
  check_model(make,
              {make_task("p", LossKind::SoftmaxCrossEntropy, 0.7),
               make_task("q", LossKind::BinaryCrossEntropy, 1.3)},
              5, 5, /*step=*/11);
}

TEST(NetworkGradients, TaskReadingTheRepresentationDirectly) {
  // The second task's output is z itself, so its loss backward writes straight into the
  // fan-out's per-task buffer.
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("x", {9});
    Value z = dense(4, Activation::ReLU, "shared")(dense(6, Activation::ReLU)(x));
    return b.build({{"digit", dense(3)(z)}, {"embed", z}});
  };
  check_model(make,
              {make_task("digit", LossKind::SoftmaxCrossEntropy, 1.0),
               make_task("embed", LossKind::MeanSquaredError, 0.5)},
              4, 6);
}

TEST(NetworkGradients, LayerSharedAcrossTwoHeads) {
  // One dense object called once in each head: its gradient is the sum over both heads.
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("x", {8});
    Value z = dense(5, Activation::ReLU, "shared")(x);
    LayerRef common = dense(5, Activation::None, "common");
    Value a = dense(3, Activation::None, "a_out")(relu()(common(z)));
    Value c = dense(1, Activation::None, "c_out")(common(dense(5, Activation::None, "c_in")(z)));
    return b.build({{"a", a}, {"c", c}});
  };
  check_model(make,
              {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
               make_task("c", LossKind::MeanSquaredError, 0.5)},
              4, 7);
}

TEST(NetworkGradients, TwoTasksOnTheSameOutputAndAnOutputWithoutTask) {
  // Two tasks (CE with class indices and CE with soft targets) read one output, which then is
  // the fan-out; the model's "value" output has no task (computed forward, no backward).
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("x", {6});
    Value z = dense(5, Activation::ReLU, "hidden")(x);
    return b.build({{"logits", dense(4, Activation::None, "logits")(z)},
                    {"value", dense(2, Activation::None, "value")(z)}});
  };
  Task hard = make_task("hard", LossKind::SoftmaxCrossEntropy, 1.0);
  hard.output = "logits";
  Task soft = make_task("soft", LossKind::SoftmaxCrossEntropy, 0.25);
  soft.output = "logits";
  soft.target = TargetKind::Values;
  check_model(make, {hard, soft}, 4, 8);
  Network net(make(), {hard, soft}, f64_options(4));
  EXPECT_EQ(net.fan_out().representation(), "logits");
}

// Models whose tasks share layers below every single shared value are cut at several values
// (Network::Plan::choose_cut): the per-task gradient is their concatenation.

TEST(NetworkGradients, ThreeTasksTwoOnOneOutputCutAtTwoValues) {
  // hard and soft read "logits", value reads "hidden_relu": the cut is both values, and the
  // trunk layer "logits" adds its input gradient to what the balancer wrote at hidden_relu.
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("x", {6});
    Value z = dense(5, Activation::ReLU, "hidden")(x);
    return b.build({{"logits", dense(4, Activation::None, "logits")(z)},
                    {"value", dense(2, Activation::None, "value")(z)}});
  };
  Task hard = make_task("hard", LossKind::SoftmaxCrossEntropy, 1.0);
  hard.output = "logits";
  Task soft = make_task("soft", LossKind::SoftmaxCrossEntropy, 0.25);
  soft.output = "logits";
  soft.target = TargetKind::Values;
  Task value = make_task("value", LossKind::MeanSquaredError, 0.5);
  check_model(make, {hard, soft, value}, 4, 9);
  Network net(make(), {hard, soft, value}, f64_options(4));
  EXPECT_EQ(net.fan_out().representation(), "hidden_relu + logits");
}

// Two task trunks mixed after their first layer (a cross-stitch unit's wiring, with add as the
// mixer): each task depends on both first layers.
Model mixed_trunks_model() {
  ModelBuilder b;
  Value x = b.input("x", {6});
  Value a1 = dense(5, Activation::ReLU, "a1")(x);
  Value b1 = dense(5, Activation::ReLU, "b1")(x);
  Value a2 = dense(4, Activation::ReLU, "a2")(add("mix_a")({a1, b1}));
  Value b2 = dense(4, Activation::ReLU, "b2")(add("mix_b")({b1, a1}));
  return b.build({{"a", dense(3, Activation::None, "a_out")(a2)},
                  {"b", dense(1, Activation::None, "b_out")(b2)}});
}

TEST(NetworkGradients, MixedTaskTrunksCutAtBothMixedValues) {
  const std::vector<Task> tasks = {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
                                   make_task("b", LossKind::MeanSquaredError, 0.5)};
  check_model(mixed_trunks_model, tasks, 5, 10);
  Network net(mixed_trunks_model(), tasks, f64_options(4));
  EXPECT_EQ(net.fan_out().representation(), "a1_relu + b1_relu");
  EXPECT_TRUE(testing::contains(net.plan_summary(), "trunk: a1 a1_relu b1 b1_relu\n"));
}

TEST(NetworkGradients, GatesReadingTheInputBesideSharedExperts) {
  // MMoE's wiring: experts shared by every task, each task's gate reads the model input
  // directly; the cut is the experts' concatenation, which task "b" reads only through its
  // gate-free path: its segment stays written, task "a"'s too.
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("x", {6});
    Value e1 = dense(4, Activation::ReLU, "expert1")(x);
    Value e2 = dense(4, Activation::ReLU, "expert2")(x);
    Value experts = concat("experts")({e1, e2});
    Value ga = dense(8, Activation::None, "gate_a")(x);
    Value gb = dense(8, Activation::None, "gate_b")(x);
    return b.build({{"a", dense(3, Activation::None, "a_out")(add("mix_a")({experts, ga}))},
                    {"b", dense(1, Activation::None, "b_out")(add("mix_b")({experts, gb}))}});
  };
  const std::vector<Task> tasks = {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
                                   make_task("b", LossKind::MeanSquaredError, 2.0)};
  check_model(make, tasks, 4, 11);
  Network net(make(), tasks, f64_options(4));
  EXPECT_EQ(net.fan_out().representation(), "experts");
}

TEST(NetworkGradients, ACutValueATaskNeverReachesIsZeroedEveryStep) {
  // The cut is {a1_relu, b1_relu}; task "b" reads only b1: its gradient at a1 must be zero,
  // also after a longer batch left other numbers in that part of its buffer (the segments move
  // with the batch size).
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("x", {6});
    Value a1 = dense(5, Activation::ReLU, "a1")(x);
    Value b1 = dense(5, Activation::ReLU, "b1")(x);
    return b.build({{"a", dense(3, Activation::None, "a_out")(add("mix_a")({a1, b1}))},
                    {"b", dense(1, Activation::None, "b_out")(b1)},
                    {"c", dense(1, Activation::None, "c_out")(a1)}});
  };
  const std::vector<Task> tasks = {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
                                   make_task("b", LossKind::MeanSquaredError, 0.5),
                                   make_task("c", LossKind::MeanSquaredError, 0.5)};
  Network net(make(), tasks, f64_options(6));
  EXPECT_EQ(net.fan_out().representation(), "a1_relu + b1_relu");
  fill_batch(net, 12);
  testing::train_pass(net, 6);
  EXPECT_TRUE(check_network_gradients(net, 3));
  const std::vector<double> gb = net.fan_out().task_gradient(1).to_vector<double>();
  ASSERT_EQ(gb.size(), size_t(3 * 10));
  for (size_t i = 0; i < 15; ++i) EXPECT_EQ(gb[i], 0.0) << "a1 segment, element " << i;
  double b_norm = 0;
  for (size_t i = 15; i < 30; ++i) b_norm += gb[i] * gb[i];
  EXPECT_GT(b_norm, 0.0);
}

// Soft sharing: one trunk per task, an L2 penalty between corresponding layers; its gradient
// is part of backward and its value part of total_loss (what the checker differentiates).
Model separate_trunks_model() {
  ModelBuilder b;
  Value x = b.input("x", {6});
  Value a = dense(4, Activation::ReLU, "a2")(dense(5, Activation::ReLU, "a1")(x));
  Value c = dense(4, Activation::ReLU, "b2")(dense(5, Activation::ReLU, "b1")(x));
  return b.build({{"a", dense(3, Activation::None, "a_out")(a)},
                  {"b", dense(1, Activation::None, "b_out")(c)}});
}

TEST(NetworkGradients, SoftSharingPenaltyIsPartOfTheStep) {
  const std::vector<Task> tasks = {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
                                   make_task("b", LossKind::MeanSquaredError, 0.5)};
  NetworkOptions options = f64_options(5, 13);
  options.soft_sharing = {0.3, {{"a1", "b1"}, {"a2", "b2"}}};
  Network net(separate_trunks_model(), tasks, options);
  fill_batch(net, 13);
  EXPECT_TRUE(check_network_gradients(net, 5));
  EXPECT_TRUE(check_network_gradients(net, 3));
  // The penalty is what it says: (λ/2)·Σ‖W_a − W_b‖² over the tied parameters.
  double expected = 0;
  for (const auto& [first, second] : {std::pair{"a1", "b1"}, std::pair{"a2", "b2"}})
    for (const char* suffix : {".weight", ".bias"}) {
      const auto find = [&](const std::string& name) {
        for (Parameter* p : net.parameters().all)
          if (p->name == name) return p->value.to_vector<double>();
        ADD_FAILURE() << "no parameter " << name;
        return std::vector<double>{};
      };
      const auto u = find(std::string(first) + suffix), v = find(std::string(second) + suffix);
      for (size_t i = 0; i < u.size(); ++i) expected += 0.15 * (u[i] - v[i]) * (u[i] - v[i]);
    }
  EXPECT_GT(expected, 0.0);
  EXPECT_NEAR(net.soft_sharing_penalty(), expected, 1e-12);
}

TEST(NetworkGradients, SoftSharingNamesWhatItCannotTie) {
  const std::vector<Task> tasks = {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
                                   make_task("b", LossKind::MeanSquaredError, 0.5)};
  const auto message = [&](SoftSharing soft) {
    NetworkOptions options = f64_options(4);
    options.soft_sharing = std::move(soft);
    return testing::error_message([&] { Network net(separate_trunks_model(), tasks, options); });
  };
  EXPECT_TRUE(testing::contains(message({0.1, {{"a1", "nope"}}}), "no layer 'nope'"));
  EXPECT_TRUE(testing::contains(message({0.1, {{"a1", "a2"}}}), "not copies of one layer"));
  EXPECT_TRUE(testing::contains(message({0.1, {{"a1"}}}), "2 to 16 layers"));
  EXPECT_TRUE(testing::contains(message({0.1, {{"a1", "b1"}, {"b1", "a1"}}}), "in two groups"));
  EXPECT_TRUE(testing::contains(message({-1, {{"a1", "b1"}}}), "non-negative"));
}

TEST(NetworkGradients, SingleTaskNetwork) {
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("image", {1, 5, 6});
    Value y = dense(3)(flatten()(max_pool2d(2)(conv2d(2, 2, {.activation = Activation::ReLU})(x))));
    return b.build({{"only", y}});
  };
  check_model(make, {make_task("only", LossKind::SoftmaxCrossEntropy, 0.8)}, 4, 9);
}

TEST(NetworkGradients, LayerSharedBetweenTrunkAndHead) {
  // "d" runs in the trunk and again in head "a": the head's call overwrites d's gradient
  // first (heads run backward before the trunk), the trunk's call adds to it.
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("x", {6});
    LayerRef d = dense(6, Activation::None, "d");
    Value z = dense(6, Activation::ReLU, "shared")(relu()(d(x)));
    Value a = dense(3, Activation::None, "a_out")(d(z));
    Value c = dense(1, Activation::None, "c_out")(z);
    return b.build({{"a", a}, {"c", c}});
  };
  check_model(make,
              {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
               make_task("c", LossKind::MeanSquaredError, 0.5)},
              4, 11);
}

TEST(NetworkGradients, SharedBatchNormAndDropoutLayers) {
  // One BatchNorm object and one Dropout object, each called on two values: separate batch
  // statistics and masks per call, summed gamma/beta gradients.
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("x", {7});
    LayerRef bn = batch_norm({.name = "bn"});
    LayerRef drop = dropout(0.4, "drop");
    Value u = drop(bn(dense(5, Activation::None, "u")(x)));
    Value v = drop(bn(dense(5, Activation::None, "v")(x)));
    Value z = dense(6, Activation::ReLU, "shared")(concat()({u, relu()(v)}));
    return b.build({{"p", dense(3)(z)}, {"q", dense(2)(z)}});
  };
  check_model(make,
              {make_task("p", LossKind::SoftmaxCrossEntropy, 1.0),
               make_task("q", LossKind::MeanSquaredError, 0.5)},
              5, 12, /*step=*/6);
}

TEST(NetworkGradients, BatchOfOne) {
  Network net(testing::two_head_model(), testing::two_head_tasks(), f64_options(3, 13));
  fill_batch(net, 13);
  EXPECT_TRUE(check_network_gradients(net, 1));
}

TEST(NetworkGradients, FloatAgreesWithDouble) {
  // The same model, seed and batch in f32 and f64: losses and gradients agree to float
  // precision (a dtype-specific dispatch mistake would be of order 1).
  std::vector<double> loss(2);
  std::vector<std::vector<double>> grads(2);
  for (int i = 0; i < 2; ++i) {
    NetworkOptions o = f64_options(5, 14);
    o.dtype = i == 0 ? DType::F32 : DType::F64;
    Network net(heads_with_batchnorm_and_dropout(), {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
                                                     make_task("b", LossKind::MeanSquaredError, 0.5)},
                o);
    fill_batch(net, 14);
    loss[size_t(i)] = testing::train_pass(net, 5, 2);
    grads[size_t(i)] = testing::flat_grads(net);
  }
  EXPECT_NEAR(loss[0], loss[1], 1e-5 * std::abs(loss[1]));
  // Float rounding through ~5 layers, relative to gradients of order 0.1.
  EXPECT_TRUE(testing::all_close(grads[0], grads[1], 1e-3, 1e-5));
}

TEST(NetworkGradients, HeadWithResidualFromZ) {
  // Head "a" reads z twice (a dense and a residual add): both write the same per-task buffer
  // at the fan-out, the add first (Overwrite), then the dense (Accumulate).
  const auto make = [] {
    ModelBuilder b;
    Value x = b.input("x", {5});
    Value z = dense(6, Activation::ReLU, "shared")(x);
    Value r = add("a_skip")({dense(6, Activation::ReLU, "a1")(z), z});
    return b.build({{"a", dense(4, Activation::None, "a_out")(r)},
                    {"c", dense(1, Activation::None, "c_out")(z)}});
  };
  check_model(make,
              {make_task("a", LossKind::SoftmaxCrossEntropy, 1.0),
               make_task("c", LossKind::MeanSquaredError, 0.5)},
              4, 15);
}

TEST(NetworkGradients, ConvSharedAcrossTwoImageSizes) {
  // One conv object on two inputs of different height and width: per-call geometry, one
  // workspace sized for the larger call, summed filter gradients.
  const auto make = [] {
    ModelBuilder b;
    Value big = b.input("big", {2, 9, 8});
    Value small = b.input("small", {2, 5, 5});
    LayerRef conv = conv2d(3, 3, {.padding = Padding::Same, .activation = Activation::ReLU, .name = "conv"});
    Value f1 = flatten()(max_pool2d(2)(conv(big)));  // (3, 4, 4)
    Value f2 = flatten()(conv(small));                // (3, 5, 5)
    Value z = dense(6, Activation::ReLU, "shared")(concat()({f1, f2}));
    return b.build({{"p", dense(3)(z)}, {"q", dense(1)(z)}});
  };
  check_model(make,
              {make_task("p", LossKind::SoftmaxCrossEntropy, 1.0),
               make_task("q", LossKind::MeanSquaredError, 0.5)},
              4, 16);
}

TEST(NetworkGradients, ZeroWeightTaskContributesNothing) {
  // With the size task at weight 0, the gradient equals that of digit alone: check against
  // central differences of the total loss (which then is digit's loss).
  check_model(testing::two_head_model, testing::two_head_tasks(1.0, 0.0), 4, 10);
}

}  // namespace
}  // namespace polytask
