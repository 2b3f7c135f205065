// Task targets from data fields and derived-label rules. A task's label source
// (Task::label_source()) is either a field of the data ("class", "value") or a rule:
//   parity      class % 2 (the digit tutorial's second head; CIFAR's 2-class head uses it too)
//   brightness  mean pixel value of the image in [0, 1], a (N, 1) regression target
//   colour      the image is tinted with one of the kTintColours chosen per example from its
//               row index and the seed, turning (1, H, W) grey images into (3, H, W) = grey ·
//               colour; images that are already RGB are multiplied channel by channel. The
//               target is the colour's index (the digit + colour tutorial's synthetic head).
//               "color" is accepted as the same rule.
//   region      the body region a Fashion-MNIST garment is worn on, from its class: upper body
//               0 (T-shirt/top 0, Pullover 2, Dress 3, Coat 4, Shirt 6), lower body 1
//               (Trouser 1), neither 2 (Sandal 5, Sneaker 7, Bag 8, Ankle boot 9). A class
//               outside 0..9 is an Error naming the task and the row. Defined for Fashion-MNIST's
//               classes only: the DataSplits overload of attach_task_targets refuses data whose
//               class names are known and are another data set's; data without class names (the
//               synthetic sets) map by index.
// A data field of the same name wins over a rule.
//
// Targets take the form the task's loss reads (Task::effective_target()):
//   - class-index tasks (softmax cross-entropy) get int32 (N,) class labels; a float source
//     (value, brightness) is an Error naming the task;
//   - value tasks (mse, binary cross-entropy) get float32 (N, 1); class labels are converted
//     (binary cross-entropy needs them in {0, 1}); softmax cross-entropy with one-hot value
//     targets cannot be fed from class labels here (Error: use class-index targets).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/data.h"
#include "engine/dataset.h"
#include "engine/task.h"

namespace polytask::datasets {

// RGB multipliers of the colour rule, by colour index: red, green, blue. Soft rather than pure
// primaries so the pattern stays visible in every channel (and RGB images keep their detail).
inline constexpr float kTintColours[3][3] = {
    {1.0f, 0.25f, 0.25f}, {0.25f, 1.0f, 0.25f}, {0.25f, 0.25f, 1.0f}};
inline constexpr int kTintColourCount = 3;

std::vector<std::string> label_rules();  // "parity", "brightness", "colour", "region"

// The region rule's target for Fashion-MNIST class `garment` (0..9; -1 outside), and the names
// of its values by index.
int garment_region(int32_t garment);
inline constexpr const char* kRegionNames[3] = {"upper body", "lower body", "neither"};

// The colour index the colour rule gives row `row` under `seed`: a hash of both, so it is the
// same for every call and independent of the class.
int tint_colour(uint64_t seed, int64_t row);

// Adds one target per task to `data`, named after the task (replacing one of that name),
// built from its label source. Sources are looked up among the targets `data` had before the
// call. Rules that change the inputs (colour) run once, first, even if several tasks use them,
// so brightness is measured on the image the model sees; the colour indices are also kept as
// the field "colour", which makes a second call on the same data leave the images alone. The
// same seed gives the same derived labels for train and test alike. Throws polytask::Error
// naming the task and the fields/rules available when a source is unknown, and naming the task
// when a source does not fit its loss.
// The names of a class-index task's values: the data set's class names for "class" (and for
// "left" and "right", the two classes of a multi: pair), "even"/"odd" for parity, the tint
// colours' names for colour, kRegionNames for region; empty where there are none (then the
// index stands for itself) and for value tasks.
std::vector<std::string> task_value_names(const Task& task,
                                          const std::vector<std::string>& class_names);

void attach_task_targets(Dataset& data, const std::vector<Task>& tasks, uint64_t seed);

// The same for both splits, after checking that every rule fits the data's classes: a rule that
// is defined for one data set's classes (region: Fashion-MNIST's) is refused, naming the task,
// the rule and the data's classes, when the data's class names are known and are another's.
// Either both splits get their targets or, on an Error, neither.
void attach_task_targets(DataSplits& data, const std::vector<Task>& tasks, uint64_t seed);

}  // namespace polytask::datasets
