// Model configs: a shared trunk, heads and tasks written as TOML, so users can define their own
// multi-task models without recompiling. The built-in presets are such files
// (models/configs/*.toml), compiled into the binary.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/balancer.h"
#include "engine/graph.h"
#include "engine/network.h"
#include "engine/task.h"
#include "models/sharing.h"

namespace polytask::models {

struct LayerSpec;  // one [[layers]] entry (models/layer_spec.h)

struct ModelConfig {
  std::string name;
  std::string description;
  std::string default_data;  // a data source (see datasets/data.h) the preset is meant for
  std::vector<Task> tasks;
  std::string fan_out;  // optional: the shared representation's layer name (pass
                        // fan_out_value(config) as NetworkOptions::fan_out)
  std::string origin;   // file name or "preset NAME", for error messages
  // The optional [balancer] table: the gradient-balancing strategy and its options (static
  // weights when absent). lr 0 and seed are left to the trainer (the CLI passes --lr, --seed).
  BalancerOptions balancer;
  // The optional [sharing] table: how the tasks share the trunk (models/sharing.h).
  SharingOptions sharing;
  std::vector<std::string> input_names;
  std::vector<Shape> input_shapes;  // parallel to input_names: the declared shape, or rank 0
                                    // (taken from the data)
  std::vector<std::shared_ptr<const LayerSpec>> layers;
  std::vector<std::pair<std::string, std::string>> outputs;  // output name -> layer name
  // Where each entry was written, "origin:line:column", keyed "input NAME", "layer NAME",
  // "output NAME", "task NAME" (for error messages; not part of the config's identity).
  std::map<std::string, std::string> source_positions;
};

struct PresetInfo {
  std::string name;
  std::string description;
};

std::vector<PresetInfo> list_presets();
// Throws polytask::Error listing the known presets when `name` is not one of them.
ModelConfig preset_config(const std::string& name);
// A preset's TOML file as written in models/configs/ (with its comments), to copy and edit.
// Throws like preset_config for an unknown name.
std::string preset_toml(const std::string& name);
// Parses TOML text; errors name `origin` and the line (and column) of the problem.
ModelConfig parse_config(const std::string& toml_text, const std::string& origin);
ModelConfig load_config_file(const std::string& path);

// Builds the model for inputs of these per-sample shapes (taken from the data, so a preset runs
// on any data set of a compatible shape). Errors name the layer and the shapes.
Model build_model(const ModelConfig& config, const std::map<std::string, Shape>& input_shapes);

// The fan-out as a value name for NetworkOptions::fan_out: config.fan_out names a config layer,
// and a layer with `activation = "relu"` (or one that `shares` another) produces a graph value
// of another name ("shared" -> "shared_relu", a second call of "proj" -> "proj#1"). Empty when
// the config leaves the fan-out to the network's automatic choice.
std::string fan_out_value(const ModelConfig& config);

// The soft-sharing penalty's groups (NetworkOptions::soft_sharing) of a config in soft mode;
// empty otherwise.
SoftSharing soft_sharing_of(const ModelConfig& config);

// The config with its [sharing] mode carried out: task copies, cross-stitch units, experts and
// gates written out as layers, the sharing reset to the default (build_model does this itself).
// Errors name the config and what does not fit (an unknown branch layer, a head two tasks
// share, ...).
ModelConfig apply_sharing(const ModelConfig& config);

// The config as TOML (with the tasks' current weights), for the output directory.
std::string to_toml(const ModelConfig& config);

}  // namespace polytask::models
