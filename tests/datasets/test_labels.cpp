// Task targets from data fields and derived-label rules, on hand-made data whose answers are
// known exactly.
#include "datasets/labels.h"

#include <gtest/gtest.h>

#include <set>

#include "datasets/synthetic.h"
#include "tests/datasets/dataset_fixtures.h"

namespace polytask::testing {
namespace {

using datasets::attach_task_targets;
using datasets::kTintColours;
using datasets::tint_colour;

Task task(const std::string& name, const std::string& label,
          LossKind loss = LossKind::SoftmaxCrossEntropy) {
  Task t;
  t.name = name;
  t.label = label;
  t.loss = loss;
  return t;
}

// n grey images of (1, 2, 2) with pixel values i/100, .., and classes 0..n-1.
Dataset grey_data(int64_t n) {
  std::vector<float> px(size_t(n * 4));
  for (size_t i = 0; i < px.size(); ++i) px[i] = float(i % 101) / 100.0f;
  std::vector<int32_t> cls(px.size() / 4);
  for (size_t i = 0; i < cls.size(); ++i) cls[i] = int32_t(i);
  std::vector<float> value(cls.size());
  for (size_t i = 0; i < value.size(); ++i) value[i] = 0.5f * float(i);
  return Dataset{{{"image", Tensor::from_vector<float>({n, 1, 2, 2}, px)}},
                 {{"class", Tensor::from_vector<int32_t>({n}, cls)},
                  {"value", Tensor::from_vector<float>({n, 1}, value)}}};
}

TEST(Labels, RulesAreListed) {
  EXPECT_EQ(datasets::label_rules(),
            (std::vector<std::string>{"parity", "brightness", "colour", "region"}));
}

TEST(Labels, FieldIsCopiedUnderTheTaskName) {
  Dataset d = grey_data(6);
  attach_task_targets(d, {task("digit", "class"), task("size", "value", LossKind::MeanSquaredError)}, 0);
  EXPECT_EQ(d.target("digit").to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(d.target("digit").dtype(), DType::I32);
  EXPECT_EQ(d.target("size").shape(), (Shape{6, 1}));
  EXPECT_EQ(d.target("size").to_vector<float>(), d.target("value").to_vector<float>());
  d.validate();
}

TEST(Labels, ATargetOfTheTaskNameIsReplaced) {
  Dataset d = grey_data(4);
  d.targets.push_back({"parity", Tensor::from_vector<int32_t>({4}, {9, 9, 9, 9})});
  // The task's own name is a field now, and a field wins over the rule of the same name.
  attach_task_targets(d, {task("parity", "")}, 0);
  EXPECT_EQ(d.target("parity").to_vector<int32_t>(), (std::vector<int32_t>{9, 9, 9, 9}));
  attach_task_targets(d, {task("parity", "class")}, 0);
  EXPECT_EQ(d.target("parity").to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 3}));
  size_t named_parity = 0;
  for (const auto& nt : d.targets) named_parity += nt.name == "parity";
  EXPECT_EQ(named_parity, 1u);
}

TEST(Labels, ParityIsClassModTwo) {
  Dataset d = grey_data(7);
  attach_task_targets(d, {task("parity", "")}, 0);  // an empty label means the task's name
  const Tensor& p = d.target("parity");
  EXPECT_EQ(p.dtype(), DType::I32);
  EXPECT_EQ(p.shape(), (Shape{7}));
  EXPECT_EQ(p.to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 0, 1, 0, 1, 0}));
}

TEST(Labels, BrightnessIsTheExactMeanPixel) {
  Dataset d{{{"image", Tensor::from_vector<float>({2, 1, 2, 2}, {0.0f, 0.25f, 0.5f, 1.0f,
                                                                 1.0f, 1.0f, 1.0f, 0.0f})}},
            {}};
  attach_task_targets(d, {task("bright", "brightness", LossKind::MeanSquaredError)}, 0);
  const Tensor& b = d.target("bright");
  EXPECT_EQ(b.dtype(), DType::F32);
  EXPECT_EQ(b.shape(), (Shape{2, 1}));
  EXPECT_EQ(b.to_vector<float>(), (std::vector<float>{0.4375f, 0.75f}));
}

TEST(Labels, ColourTintsGreyImagesReproducibly) {
  const int64_t n = 60;
  const Dataset original = grey_data(n);
  Dataset d = original;
  attach_task_targets(d, {task("colour", "colour")}, 42);
  const Tensor& image = d.input("image");
  ASSERT_EQ(image.shape(), (Shape{n, 3, 2, 2}));
  const auto grey = original.input("image").to_vector<float>();
  const auto rgb = image.to_vector<float>();
  const auto colour = d.target("colour").to_vector<int32_t>();
  std::set<int32_t> seen;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t c = colour[size_t(i)];
    ASSERT_EQ(c, tint_colour(42, i));
    seen.insert(c);
    for (size_t ch = 0; ch < 3; ++ch)
      for (size_t p = 0; p < 4; ++p)
        ASSERT_EQ(rgb[size_t(i) * 12 + ch * 4 + p], grey[size_t(i) * 4 + p] * kTintColours[c][ch]);
  }
  EXPECT_EQ(seen.size(), 3u) << "60 rows should use every colour";

  Dataset again = original;
  attach_task_targets(again, {task("colour", "colour")}, 42);
  EXPECT_EQ(again.target("colour").to_vector<int32_t>(), colour);
  EXPECT_EQ(again.input("image").to_vector<float>(), rgb);
  Dataset other = original;
  attach_task_targets(other, {task("colour", "colour")}, 43);
  EXPECT_NE(other.target("colour").to_vector<int32_t>(), colour);
  // The original's image tensor is untouched: tinting makes a new tensor.
  EXPECT_EQ(original.input("image").shape(), (Shape{n, 1, 2, 2}));
}

TEST(Labels, ColourIsAppliedOnceForSeveralTasksAndCalls) {
  const Dataset original = grey_data(20);
  Dataset once = original;
  attach_task_targets(once, {task("colour", "colour")}, 7);
  Dataset twice = original;
  attach_task_targets(twice, {task("tint", "colour"), task("hue", "color"), task("digit", "class")}, 7);
  EXPECT_EQ(twice.input("image").to_vector<float>(), once.input("image").to_vector<float>());
  EXPECT_EQ(twice.target("tint").to_vector<int32_t>(), once.target("colour").to_vector<int32_t>());
  EXPECT_EQ(twice.target("hue").to_vector<int32_t>(), once.target("colour").to_vector<int32_t>());
  // A second call (say, after splitting off validation rows) leaves the images alone.
  attach_task_targets(twice, {task("tint", "colour")}, 7);
  EXPECT_EQ(twice.input("image").to_vector<float>(), once.input("image").to_vector<float>());
}

TEST(Labels, ColourMultipliesRgbImagesAndBrightnessSeesTheTint) {
  Dataset d = datasets::synthetic_rgb(12, 1);
  const auto before = d.input("image").to_vector<float>();
  attach_task_targets(d, {task("colour", "colour"), task("b", "brightness", LossKind::MeanSquaredError)}, 3);
  ASSERT_EQ(d.input("image").shape(), (Shape{12, 3, 28, 28}));
  const auto after = d.input("image").to_vector<float>();
  const auto colour = d.target("colour").to_vector<int32_t>();
  const auto bright = d.target("b").to_vector<float>();
  for (size_t i = 0; i < 12; ++i) {
    double sum = 0;
    for (size_t ch = 0; ch < 3; ++ch)
      for (size_t p = 0; p < 784; ++p) {
        const size_t at = (i * 3 + ch) * 784 + p;
        ASSERT_EQ(after[at], before[at] * kTintColours[colour[i]][ch]);
        sum += double(after[at]);
      }
    EXPECT_FLOAT_EQ(bright[i], float(sum / (3 * 784)));
  }
}

TEST(Labels, RegionMapsEveryGarmentAsDocumented) {
  // T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
  const std::vector<int32_t> expected{0, 1, 0, 0, 0, 2, 0, 2, 2, 2};
  for (int32_t garment = 0; garment < 10; ++garment)
    EXPECT_EQ(datasets::garment_region(garment), expected[size_t(garment)]) << garment;
  EXPECT_EQ(datasets::garment_region(-1), -1);
  EXPECT_EQ(datasets::garment_region(10), -1);

  Dataset d = grey_data(10);
  attach_task_targets(d, {task("region", "")}, 0);
  const Tensor& r = d.target("region");
  EXPECT_EQ(r.dtype(), DType::I32);
  EXPECT_EQ(r.shape(), (Shape{10}));
  EXPECT_EQ(r.to_vector<int32_t>(), expected);
}

TEST(Labels, RegionOfAClassOutsideTheGarmentsNamesTaskAndRow) {
  Dataset d = grey_data(12);  // classes 0..11
  EXPECT_TRUE(contains_all(error_message([&] { attach_task_targets(d, {task("body", "region")}, 0); }),
                           {"task 'body'", "'region'", "0..9", "has 10 at row 10"}));
  EXPECT_EQ(d.targets.size(), 2u);
}

TEST(Labels, ValueNames) {
  const std::vector<std::string> classes{"a", "b", "c"};
  using datasets::task_value_names;
  EXPECT_EQ(task_value_names(task("body", "region"), classes),
            (std::vector<std::string>{"upper body", "lower body", "neither"}));
  EXPECT_EQ(task_value_names(task("digit", "class"), classes), classes);
  // The two classes of a multi: pair.
  EXPECT_EQ(task_value_names(task("l", "left"), classes), classes);
  EXPECT_EQ(task_value_names(task("r", "right"), classes), classes);
  EXPECT_EQ(task_value_names(task("parity", ""), classes), (std::vector<std::string>{"even", "odd"}));
  EXPECT_TRUE(task_value_names(task("size", "value", LossKind::MeanSquaredError), classes).empty());
}

datasets::DataSplits splits(std::vector<std::string> class_names, std::string class_family) {
  datasets::DataSplits s;
  s.train = grey_data(10);
  s.test = grey_data(4);
  s.class_names = std::move(class_names);
  s.class_family = std::move(class_family);
  return s;
}

TEST(Labels, BothSplitsGetTheirTargets) {
  auto fashion = splits({std::begin(datasets::kFashionMnistClassNames),
                         std::end(datasets::kFashionMnistClassNames)},
                        "Fashion-MNIST garments");
  attach_task_targets(fashion, {task("region", ""), task("parity", "")}, 0);
  EXPECT_EQ(fashion.train.target("region").to_vector<int32_t>(),
            (std::vector<int32_t>{0, 1, 0, 0, 0, 2, 0, 2, 2, 2}));
  EXPECT_EQ(fashion.test.target("region").to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 0, 0}));
  EXPECT_EQ(fashion.test.target("parity").to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 0, 1}));
  // Without class names (the synthetic sets) classes map by index.
  auto unnamed = splits({}, "");
  attach_task_targets(unnamed, {task("region", "")}, 0);
  EXPECT_EQ(unnamed.train.target("region").to_vector<int32_t>(),
            fashion.train.target("region").to_vector<int32_t>());
}

TEST(Labels, RegionIsRefusedOnAnotherDataSetsClasses) {
  auto mnist = splits({"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, "MNIST digits");
  EXPECT_TRUE(contains_all(
      error_message([&] { attach_task_targets(mnist, {task("parity", ""), task("body", "region")}, 0); }),
      {"task 'body'", "rule 'region' maps Fashion-MNIST garments; this data's classes are MNIST digits"}));
  EXPECT_EQ(mnist.train.targets.size(), 2u) << "nothing attached to either split";
  EXPECT_EQ(mnist.test.targets.size(), 2u);
  // Rules that fit any classes still work on it.
  attach_task_targets(mnist, {task("parity", "")}, 0);
  EXPECT_NO_THROW(mnist.test.target("parity"));
  // Names of no known family are listed.
  auto own = splits({"cat", "dog"}, "");
  EXPECT_TRUE(contains_all(error_message([&] { attach_task_targets(own, {task("body", "region")}, 0); }),
                           {"task 'body'", "this data's classes are cat, dog"}));
}

TEST(Labels, ATestSplitFailureLeavesBothSplitsAlone) {
  auto s = splits({}, "");
  s.test = grey_data(12);  // class 10 is no garment
  EXPECT_TRUE(contains_all(error_message([&] { attach_task_targets(s, {task("region", "")}, 0); }),
                           {"task 'region'", "row 10"}));
  EXPECT_EQ(s.train.targets.size(), 2u);
}

TEST(Labels, ClassLabelsBecomeValuesForBinaryCrossEntropy) {
  Dataset d = grey_data(4);
  attach_task_targets(d, {task("odd", "parity", LossKind::BinaryCrossEntropy)}, 0);
  EXPECT_EQ(d.target("odd").dtype(), DType::F32);
  EXPECT_EQ(d.target("odd").shape(), (Shape{4, 1}));
  EXPECT_EQ(d.target("odd").to_vector<float>(), (std::vector<float>{0, 1, 0, 1}));
  EXPECT_TRUE(contains_all(
      error_message([&] { attach_task_targets(d, {task("bad", "class", LossKind::BinaryCrossEntropy)}, 0); }),
      {"task 'bad'", "label 2", "0 or 1"}));
}

TEST(Labels, FloatSourceForSoftmaxTaskNamesTheTask) {
  Dataset d = grey_data(4);
  EXPECT_TRUE(contains_all(error_message([&] { attach_task_targets(d, {task("size", "value")}, 0); }),
                           {"task 'size'", "softmax_cross_entropy", "'value'", "float regression",
                            "mse"}));
  EXPECT_TRUE(contains_all(error_message([&] { attach_task_targets(d, {task("lum", "brightness")}, 0); }),
                           {"task 'lum'", "'brightness'", "float regression"}));
  Task one_hot = task("digit", "class");
  one_hot.target = TargetKind::Values;
  EXPECT_TRUE(contains_all(error_message([&] { attach_task_targets(d, {one_hot}, 0); }),
                           {"task 'digit'", "one-hot", "class-index"}));
}

TEST(Labels, UnknownSourceListsFieldsAndRules) {
  Dataset d = grey_data(3);
  const auto message = error_message([&] { attach_task_targets(d, {task("digit", "")}, 0); });
  EXPECT_TRUE(contains_all(message, {"task 'digit'", "unknown label source 'digit'",
                                     "class, value", "parity, brightness, colour, region"}));
  // Nothing was attached by the failed call.
  EXPECT_EQ(d.targets.size(), 2u);
}

TEST(Labels, RulesNeedTheirFields) {
  Dataset two = datasets::synthetic_two_input(5, 1);
  EXPECT_TRUE(contains_all(
      error_message([&] { attach_task_targets(two, {task("b", "brightness", LossKind::MeanSquaredError)}, 0); }),
      {"task 'b'", "needs an input named 'image'", "a, b"}));
  EXPECT_TRUE(contains_all(error_message([&] { attach_task_targets(two, {task("c", "colour")}, 0); }),
                           {"task 'c'", "'image'"}));
  Dataset no_class{{{"image", Tensor::zeros({2, 1, 2, 2})}}, {}};
  EXPECT_TRUE(contains_all(error_message([&] { attach_task_targets(no_class, {task("parity", "")}, 0); }),
                           {"task 'parity'", "needs a 'class' field"}));
  Dataset four_channels{{{"image", Tensor::zeros({2, 4, 2, 2})}}, {}};
  EXPECT_TRUE(contains_all(error_message([&] { attach_task_targets(four_channels, {task("c", "colour")}, 0); }),
                           {"task 'c'", "4 channels"}));
}

}  // namespace
}  // namespace polytask::testing
