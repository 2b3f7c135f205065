// The reference workloads as ready-made models with their tasks.
#pragma once

#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/task.h"

namespace polytask::models {

struct Preset {
  Model model;
  std::vector<Task> tasks;
};

struct PresetInfo {
  std::string name;
  std::string description;
};

std::vector<PresetInfo> list_presets();

// Builds a preset for inputs of `image_shape` (C, H, W). Throws polytask::Error naming the
// known presets when `name` is not one of them.
Preset make_preset(const std::string& name, const Shape& image_shape = {1, 28, 28});

}  // namespace polytask::models
