// Bad models, tasks and batches fail with a polytask::Error that says what and where: the
// layer or task name and the shapes involved, at graph-build or compile time rather than in
// the middle of training.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "engine/layers.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

using namespace layers;
using testing::contains;
using testing::error_message;
using testing::f64_options;
using testing::fill_batch;

Task task(const std::string& name, LossKind loss = LossKind::SoftmaxCrossEntropy, double weight = 1.0) {
  Task t;
  t.name = name;
  t.loss = loss;
  t.weight = weight;
  return t;
}

// ---- graph building ----------------------------------------------------------------------

TEST(GraphErrors, DenseOnAnUnflattenedImage) {
  ModelBuilder b;
  Value x = b.input("image", {1, 9, 9});
  Value c = conv2d(4, 3, {.name = "conv"})(x);  // (4, 7, 7)
  const std::string message = error_message([&] { dense(10, Activation::None, "fc")(c); });
  EXPECT_TRUE(contains(message, "fc"));
  EXPECT_TRUE(contains(message, "dense"));
  EXPECT_TRUE(contains(message, "(4, 7, 7)"));
  EXPECT_TRUE(contains(message, "flatten"));
}

TEST(GraphErrors, DenseWithAutomaticNameNamesIt) {
  ModelBuilder b;
  Value x = b.input("image", {2, 3, 3});
  Value f = dense(3)(flatten()(x));  // "dense"
  (void)f;
  const std::string message = error_message([&] { dense(5)(x); });
  EXPECT_TRUE(contains(message, "dense_1 (dense)"));
  EXPECT_TRUE(contains(message, "(2, 3, 3)"));
}

TEST(GraphErrors, Conv2DOnFeatures) {
  ModelBuilder b;
  Value x = b.input("features", {50});
  const std::string message = error_message([&] { conv2d(4, 3, {.name = "conv_a"})(x); });
  EXPECT_TRUE(contains(message, "conv_a"));
  EXPECT_TRUE(contains(message, "(50,)"));
  EXPECT_TRUE(contains(message, "(channels, height, width)"));
}

TEST(GraphErrors, Conv2DValidKernelLargerThanInput) {
  ModelBuilder b;
  Value x = b.input("image", {3, 4, 6});
  const std::string message = error_message([&] { conv2d(2, 5, {.name = "big"})(x); });
  EXPECT_TRUE(contains(message, "big"));
  EXPECT_TRUE(contains(message, "5x5"));
  EXPECT_TRUE(contains(message, "(3, 4, 6)"));
  // 'same' padding fits any kernel.
  EXPECT_EQ(conv2d(2, 5, {.padding = Padding::Same})(x).shape(), (Shape{2, 4, 6}));
}

TEST(GraphErrors, MaxPoolWindowLargerThanInput) {
  ModelBuilder b;
  Value x = b.input("image", {3, 2, 6});
  const std::string message = error_message([&] { max_pool2d(3, 0, "pool")(x); });
  EXPECT_TRUE(contains(message, "pool"));
  EXPECT_TRUE(contains(message, "(3, 2, 6)"));
}

TEST(GraphErrors, InvalidLayerArguments) {
  EXPECT_THROW(conv2d(0, 3), Error);
  EXPECT_THROW(conv2d(2, 3, {.stride = 0}), Error);
  EXPECT_THROW(dense(0), Error);
  EXPECT_THROW(max_pool2d(0), Error);
  EXPECT_THROW(dropout(1.0), Error);
  EXPECT_THROW(dropout(-0.1), Error);
  EXPECT_THROW(batch_norm({.momentum = 1.0}), Error);
  EXPECT_THROW(batch_norm({.epsilon = 0.0}), Error);
}

TEST(GraphErrors, AddOfMismatchedShapes) {
  ModelBuilder b;
  Value x = b.input("x", {6});
  Value a = dense(4)(x);
  Value c = dense(5)(x);
  const std::string message = error_message([&] { add("skip")({a, c}); });
  EXPECT_TRUE(contains(message, "skip"));
  EXPECT_TRUE(contains(message, "(4,)"));
  EXPECT_TRUE(contains(message, "(5,)"));
  EXPECT_TRUE(contains(error_message([&] { add()({a}); }), "expects 2 inputs"));
}

TEST(GraphErrors, ConcatOfIncompatibleShapes) {
  ModelBuilder b;
  Value x = b.input("image", {3, 8, 8});
  Value a = conv2d(2, 3)(x);  // (2, 6, 6)
  const std::string message = error_message([&] { concat("join")({x, a}); });
  EXPECT_TRUE(contains(message, "join"));
  EXPECT_TRUE(contains(message, "(3, 8, 8)"));
  EXPECT_TRUE(contains(message, "(2, 6, 6)"));
  Value f = b.input("features", {4});
  EXPECT_TRUE(contains(error_message([&] { concat("join2")({x, f}); }), "(4,)"));
  EXPECT_TRUE(contains(error_message([&] { concat()({f}); }), "expects 2"));
}

TEST(GraphErrors, LayerCalledTwiceOnIncompatibleShapes) {
  ModelBuilder b;
  Value x7 = b.input("a", {7});
  Value x5 = b.input("b", {5});
  LayerRef shared = dense(3, Activation::None, "shared");
  shared(x7);
  std::string message = error_message([&] { shared(x5); });
  EXPECT_TRUE(contains(message, "shared"));
  EXPECT_TRUE(contains(message, "7 input features"));
  EXPECT_TRUE(contains(message, "(5,)"));

  Value i3 = b.input("rgb", {3, 6, 6});
  Value i1 = b.input("grey", {1, 6, 6});
  LayerRef conv = conv2d(2, 3, {.name = "conv"});
  conv(i3);
  message = error_message([&] { conv(i1); });
  EXPECT_TRUE(contains(message, "conv"));
  EXPECT_TRUE(contains(message, "3 input channels"));
  EXPECT_TRUE(contains(message, "(1, 6, 6)"));

  LayerRef bn = batch_norm({.name = "bn"});
  bn(x7);
  message = error_message([&] { bn(x5); });
  EXPECT_TRUE(contains(message, "bn"));
  EXPECT_TRUE(contains(message, "(5,)"));
}

TEST(GraphErrors, DuplicateNamesAndInputs) {
  ModelBuilder b;
  Value x = b.input("x", {4});
  EXPECT_TRUE(contains(error_message([&] { b.input("x", {3}); }), "'x'"));
  EXPECT_THROW(b.input("", {3}), Error);
  EXPECT_TRUE(contains(error_message([&] { b.input("y", {0, 3}); }), "(0, 3)"));
  dense(2, Activation::None, "fc")(x);
  EXPECT_TRUE(contains(error_message([&] { dense(2, Activation::None, "fc")(x); }), "'fc'"));
  EXPECT_TRUE(contains(error_message([&] { b.build({{"o", x}, {"o", x}}); }), "'o'"));
  EXPECT_THROW(b.build({}), Error);
}

TEST(GraphErrors, ValuesFromAnotherBuilder) {
  ModelBuilder b1, b2;
  Value a = b1.input("a", {4});
  Value c = b2.input("c", {4});
  EXPECT_TRUE(contains(error_message([&] { add("mix")({a, c}); }), "different model builders"));
  EXPECT_TRUE(contains(error_message([&] { b1.build({{"c", c}}); }), "'c'"));
}

// ---- network compilation -----------------------------------------------------------------

Model small_model() {
  ModelBuilder b;
  Value x = b.input("x", {6});
  Value z = dense(8, Activation::ReLU, "shared")(x);
  return b.build({{"digit", dense(5, Activation::None, "digit_logits")(z)},
                  {"size", dense(1, Activation::None, "size_out")(z)}});
}

TEST(NetworkErrors, SoftmaxCrossEntropyOnAOneUnitOutput) {
  const std::string message = error_message([] {
    Network net(small_model(), {task("digit"), task("size", LossKind::SoftmaxCrossEntropy)},
                f64_options(4));
  });
  EXPECT_TRUE(contains(message, "task 'size'"));
  EXPECT_TRUE(contains(message, "output 'size'"));
  EXPECT_TRUE(contains(message, "(1,)"));
  EXPECT_TRUE(contains(message, "size_out"));  // the layer that makes it
}

TEST(NetworkErrors, TaskNamingAMissingOutput) {
  Task colour = task("colour");
  const std::string message = error_message([&] {
    Network net(small_model(), {task("digit"), colour}, f64_options(4));
  });
  EXPECT_TRUE(contains(message, "'colour'"));
  EXPECT_TRUE(contains(message, "digit, size"));  // the known outputs
}

TEST(NetworkErrors, AccuracyOnARegressionTask) {
  Task size = task("size", LossKind::MeanSquaredError);
  size.metrics = {MetricKind::Accuracy};
  const std::string message =
      error_message([&] { Network net(small_model(), {task("digit"), size}, f64_options(4)); });
  EXPECT_TRUE(contains(message, "task 'size'"));
  EXPECT_TRUE(contains(message, "accuracy"));
  EXPECT_TRUE(contains(message, "mae"));
}

TEST(NetworkErrors, DuplicateTaskNames) {
  Task again = task("digit");
  const std::string message = error_message([&] {
    Network net(small_model(), {task("digit"), again}, f64_options(4));
  });
  EXPECT_TRUE(contains(message, "'digit'"));
}

TEST(NetworkErrors, NoTasksOrNoBatch) {
  EXPECT_THROW(Network(small_model(), {}, f64_options(4)), Error);
  EXPECT_THROW(Network(small_model(), {task("digit")}, f64_options(0)), Error);
}

TEST(NetworkErrors, NegativeOrNonFiniteLossWeight) {
  for (const double w : {-0.5, std::numeric_limits<double>::infinity(), std::nan("")}) {
    const std::string message = error_message([&] {
      Network net(small_model(), {task("digit"), task("size", LossKind::MeanSquaredError, w)},
                  f64_options(4));
    });
    EXPECT_TRUE(contains(message, "task 'size'")) << w;
    EXPECT_TRUE(contains(message, "weight")) << w;
  }
  Network net(small_model(), {task("digit"), task("size", LossKind::MeanSquaredError)}, f64_options(4));
  const std::string message = error_message([&] { net.fan_out().set_weight("digit", -1.0); });
  EXPECT_TRUE(contains(message, "task 'digit'"));
  EXPECT_TRUE(contains(message, "-1"));
  EXPECT_EQ(net.fan_out().weight(0), 1.0);
}

// ---- running a network -------------------------------------------------------------------

TEST(RunErrors, BatchSizeOutOfRange) {
  Network net(small_model(), {task("digit"), task("size", LossKind::MeanSquaredError)}, f64_options(4));
  fill_batch(net, 1);
  for (const int64_t n : {int64_t(5), int64_t(0), int64_t(-1)}) {
    const std::string message = error_message([&] { net.forward(n, true); });
    EXPECT_TRUE(contains(message, std::to_string(n))) << n;
    EXPECT_TRUE(contains(message, "4")) << n;  // the capacity
  }
  EXPECT_NO_THROW(net.forward(4, true));
  EXPECT_NO_THROW(net.forward(1, true));
}

TEST(RunErrors, BackwardWithoutATrainingForward) {
  Network net(small_model(), {task("digit"), task("size", LossKind::MeanSquaredError)}, f64_options(4));
  fill_batch(net, 2);
  EXPECT_THROW(net.backward(), Error);  // nothing ran yet
  net.forward(4, false);
  EXPECT_TRUE(contains(error_message([&] { net.backward(); }), "training forward"));
  net.forward(4, true, /*with_losses=*/false);
  EXPECT_THROW(net.backward(), Error);
  net.forward(4, true);
  EXPECT_NO_THROW(net.backward());
  EXPECT_THROW(net.backward(), Error);  // a second backward needs a second forward
}

TEST(RunErrors, ClassLabelOutOfRangeNamesTheRow) {
  Network net(small_model(), {task("digit"), task("size", LossKind::MeanSquaredError)}, f64_options(4));
  fill_batch(net, 3);
  net.target_buffer(0).data<int32_t>()[2] = 5;  // 5 classes: labels in [0, 5)
  std::string message = error_message([&] { net.forward(4, true); });
  EXPECT_TRUE(contains(message, "row 2"));
  EXPECT_TRUE(contains(message, "5"));
  net.target_buffer(0).data<int32_t>()[2] = -1;
  message = error_message([&] { net.forward(4, true); });
  EXPECT_TRUE(contains(message, "row 2"));
  EXPECT_TRUE(contains(message, "-1"));
  // Rows past the batch are not read.
  EXPECT_NO_THROW(net.forward(2, true));
}

TEST(RunErrors, BackwardAfterAFailedForwardThrows) {
  // A forward that throws in a loss leaves no valid batch behind: backward must refuse rather
  // than differentiate stale (or never written) softmax probabilities.
  Network net(small_model(), {task("digit"), task("size", LossKind::MeanSquaredError)}, f64_options(4));
  fill_batch(net, 4);
  net.target_buffer(0).data<int32_t>()[1] = 9;
  EXPECT_THROW(net.forward(4, true), Error);
  net.target_buffer(0).data<int32_t>()[1] = 0;  // the caller fixes the labels...
  EXPECT_THROW(net.backward(), Error);          // ...but there was no complete forward
}

TEST(RunErrors, UnknownNames) {
  Network net(small_model(), {task("digit"), task("size", LossKind::MeanSquaredError)}, f64_options(4));
  EXPECT_TRUE(contains(error_message([&] { (void)net.input_index("image"); }), "'image'"));
  EXPECT_TRUE(contains(error_message([&] { (void)net.output("colour"); }), "digit, size"));
  EXPECT_THROW((void)net.input_buffer(1), Error);
  EXPECT_THROW((void)net.target_buffer(2), Error);
  EXPECT_TRUE(contains(error_message([&] { (void)net.fan_out().task_index("colour"); }), "digit, size"));
}

TEST(RunErrors, InvalidOptimiserSettings) {
  kernels::AdamParams adam;
  adam.lr = -1e-3f;
  EXPECT_THROW(Adam{adam}, Error);
  adam.lr = 1e-3f;
  adam.beta1 = 1.0f;
  EXPECT_THROW(Adam{adam}, Error);
  kernels::SgdParams sgd;
  sgd.momentum = -0.9f;
  EXPECT_THROW(Sgd{sgd}, Error);
  Sgd ok;
  EXPECT_THROW(ok.set_learning_rate(0.0), Error);
  EXPECT_THROW(ok.set_learning_rate(std::nan("")), Error);
}

TEST(RunErrors, ParseLoss) {
  EXPECT_EQ(parse_loss("mse"), LossKind::MeanSquaredError);
  EXPECT_EQ(parse_loss("softmax_cross_entropy"), LossKind::SoftmaxCrossEntropy);
  const std::string message = error_message([] { (void)parse_loss("hinge"); });
  EXPECT_TRUE(contains(message, "'hinge'"));
  EXPECT_TRUE(contains(message, "binary_cross_entropy"));
}

}  // namespace
}  // namespace polytask

namespace polytask {
namespace {

TEST(NetworkOwnership, ASecondNetworkOverTheSameModelIsRefusedUntilTheFirstIsGone) {
  ModelBuilder b;
  Value x = b.input("x", {3});
  Model m = b.build({{"y", layers::dense(2)(x)}});
  const std::vector<Task> tasks{{.name = "y"}};
  {
    Network first(m, tasks, {.max_batch = 4});
    try {
      Network second(m, tasks, {.max_batch = 4});
      FAIL() << "a second network over bound parameters was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("already belongs to another network"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_NO_THROW(Network(m, tasks, {.max_batch = 4}));
}

}  // namespace
}  // namespace polytask
