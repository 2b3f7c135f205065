// Model configs in TOML: parsing (every problem reported as origin:line:column), building the
// model graph, writing a config back, and the built-in presets. The format is documented for
// users in models/README.md.
#include "models/config.h"
#include "models/layer_spec.h"
#include "models/toml_guard.h"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

#include "engine/layers.h"

namespace polytask::models {

// The presets' TOML text, in list order (generated from models/configs/ by the build).
std::vector<std::pair<std::string_view, std::string_view>> embedded_preset_configs();

// The largest size a config may give (a layer's units or filters, a kernel, an input
// dimension): far above any real model, far below where a buffer size could overflow.
constexpr int64_t kMaxSize = int64_t(1) << 20;

namespace {

using layers::Activation;
using layers::Padding;

struct TypeInfo {
  LayerType type;
  const char* name;
  bool multi_input;               // takes `inputs = [..]` rather than `input`
  std::vector<const char*> keys;  // type-specific keys
  std::vector<const char*> required;
};

const std::vector<TypeInfo>& layer_types() {
  static const std::vector<TypeInfo> types = {
      {LayerType::Conv2D,
       "conv2d",
       false,
       {"filters", "kernel", "stride", "padding", "activation", "use_bias"},
       {"filters", "kernel"}},
      {LayerType::MaxPool2D, "max_pool2d", false, {"pool", "stride"}, {}},
      {LayerType::Dense, "dense", false, {"units", "activation", "use_bias"}, {"units"}},
      {LayerType::ReLU, "relu", false, {}, {}},
      {LayerType::Flatten, "flatten", false, {}, {}},
      {LayerType::Add, "add", true, {}, {}},
      {LayerType::Concat, "concat", true, {}, {}},
      {LayerType::BatchNorm, "batch_norm", false, {"momentum", "epsilon"}, {}},
      {LayerType::Dropout, "dropout", false, {"rate"}, {"rate"}},
      {LayerType::Softmax, "softmax", false, {}, {}},
      {LayerType::Mixture, "mixture", true, {}, {}},
      {LayerType::CrossStitch, "cross_stitch", true, {"self_weight"}, {}},
  };
  return types;
}

const TypeInfo& type_info(LayerType type) {
  for (const auto& t : layer_types())
    if (t.type == type) return t;
  fail("internal: unknown layer type");
}

template <class Items, class Name>
std::string join(const Items& items, Name name) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + std::string(name(item));
  return out;
}

std::string join(const std::vector<std::string>& items) {
  return join(items, [](const std::string& s) { return s; });
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for the nearest of `known` within a typo or two, else "".
std::string suggestion(std::string_view word, const std::vector<std::string>& known) {
  const std::string* best = nullptr;
  size_t best_distance = 0;
  for (const auto& k : known) {
    const size_t d = edit_distance(word, k);
    if (d <= (k.size() <= 3 ? 1u : 2u) && (!best || d < best_distance))
      best = &k, best_distance = d;
  }
  return best ? cat(" (did you mean '", *best, "'?)") : "";
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

bool valid_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

// Reads one config document; every error names origin:line:column.
class ConfigReader {
 public:
  explicit ConfigReader(std::string origin) : origin_(std::move(origin)) {}

  ModelConfig read(const toml::table& root);

 private:
  std::string at(const toml::source_region& where) const {
    return cat(origin_, ":", where.begin.line, ":", where.begin.column);
  }
  template <class... Parts>
  [[noreturn]] void fail_at(const toml::source_region& where, Parts&&... parts) const {
    fail(at(where), ": ", std::forward<Parts>(parts)...);
  }

  // Rejects keys outside `allowed`, naming the closest allowed key.
  void check_keys(const toml::table& table, const std::vector<std::string>& allowed,
                  const std::string& context, const std::string& hint = "") const {
    for (const auto& [key, node] : table) {
      const std::string k(key.str());
      if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
      fail_at(key.source(), context, ": unknown key '", k, "'", suggestion(k, allowed), " (",
              hint.empty() ? "expected one of: " + join(allowed) : hint, ")");
    }
  }

  const toml::node* require(const toml::table& table, const char* key,
                            const std::string& context) const {
    const toml::node* node = table.get(key);
    if (!node) fail_at(table.source(), context, ": missing required key '", key, "'");
    return node;
  }

  std::string string_of(const toml::node& node, const std::string& key,
                        const std::string& context) const {
    if (const auto* s = node.as_string()) return s->get();
    fail_at(node.source(), context, ": '", key, "' must be a string, got ", type_name(node));
  }
  std::optional<std::string> get_string(const toml::table& table, const char* key,
                                        const std::string& context, bool required) const {
    const toml::node* node = required ? require(table, key, context) : table.get(key);
    if (!node) return std::nullopt;
    return string_of(*node, key, context);
  }
  std::string get_name(const toml::table& table, const char* key,
                       const std::string& context) const {
    std::string name = *get_string(table, key, context, true);
    if (!valid_name(name))
      fail_at(table.get(key)->source(), context, ": '", key, "' = \"", name,
              "\" is not a valid name (use letters, digits, '_' and '-')");
    return name;
  }

  // Sizes (units, filters, kernel, stride, pool) are at most kMaxSize.
  std::optional<int64_t> get_int(const toml::table& table, const char* key,
                                 const std::string& context, int64_t minimum) const {
    const toml::node* node = table.get(key);
    if (!node) return std::nullopt;
    const auto* v = node->as_integer();
    if (!v)
      fail_at(node->source(), context, ": '", key, "' must be an integer, got ", type_name(*node));
    if (v->get() < minimum)
      fail_at(node->source(), context, ": '", key, "' must be at least ", minimum, ", got ",
              v->get());
    if (v->get() > kMaxSize)
      fail_at(node->source(), context, ": '", key, "' must be at most ", kMaxSize, ", got ",
              v->get());
    return v->get();
  }

  // A float key; integers are accepted too (weight = 1).
  std::optional<double> get_number(const toml::table& table, const char* key,
                                   const std::string& context) const {
    const toml::node* node = table.get(key);
    if (!node) return std::nullopt;
    if (const auto* f = node->as_floating_point()) return f->get();
    if (const auto* i = node->as_integer()) return double(i->get());
    fail_at(node->source(), context, ": '", key, "' must be a number, got ", type_name(*node));
  }

  std::optional<bool> get_bool(const toml::table& table, const char* key,
                               const std::string& context) const {
    const toml::node* node = table.get(key);
    if (!node) return std::nullopt;
    if (const auto* b = node->as_boolean()) return b->get();
    fail_at(node->source(), context, ": '", key, "' must be true or false, got ", type_name(*node));
  }

  // A string that must be one of `choices`.
  std::optional<std::string> get_choice(const toml::table& table, const char* key,
                                        const std::string& context,
                                        const std::vector<std::string>& choices) const {
    auto value = get_string(table, key, context, false);
    if (value && std::find(choices.begin(), choices.end(), *value) == choices.end())
      fail_at(table.get(key)->source(), context, ": '", key, "' = \"", *value,
              "\" is not one of: ", join(choices));
    return value;
  }

  // `[[key]]` entries: an array of tables.
  std::vector<const toml::table*> tables(const toml::table& root, const char* key,
                                         bool required) const {
    const toml::node* node = root.get(key);
    if (!node) {
      if (required) fail(origin_, ":1:1: missing [[", key, "]] entries");
      return {};
    }
    const auto* array = node->as_array();
    if (!array)
      fail_at(node->source(), "'", key, "' must be an array of tables ([[", key, "]]), got ",
              type_name(*node));
    std::vector<const toml::table*> out;
    for (const toml::node& element : *array) {
      const auto* table = element.as_table();
      if (!table)
        fail_at(element.source(), "each '", key, "' entry must be a table ([[", key, "]]), got ",
                type_name(element));
      out.push_back(table);
    }
    if (required && out.empty()) fail_at(node->source(), "'", key, "' has no entries");
    return out;
  }

  // Registers a name in a namespace; duplicates name the first definition's line.
  void claim(std::map<std::string, toml::source_region>& names, const std::string& name,
             const toml::source_region& where, const std::string& what) const {
    const auto [it, inserted] = names.emplace(name, where);
    if (!inserted)
      fail_at(where, what, " name '", name, "' is already used (line ", it->second.begin.line, ")");
  }

  void read_input(const toml::table& t, ModelConfig& config);
  void read_layer(const toml::table& t, size_t index, ModelConfig& config);
  void read_layer_settings(const toml::table& t, const std::string& context, LayerSpec& spec);
  void read_task(const toml::table& t, ModelConfig& config);
  void read_balancer(const toml::node& node, ModelConfig& config);
  void read_sharing(const toml::node& node, ModelConfig& config);

  std::string origin_;
  std::map<std::string, toml::source_region> values_;  // inputs and layers: what `input` names
  std::map<std::string, toml::source_region> outputs_;
  std::map<std::string, toml::source_region> tasks_;
  std::map<std::string, const LayerSpec*> layers_;
  std::set<std::string> activation_names_;  // "<layer>_relu" nodes the engine adds
};

ModelConfig ConfigReader::read(const toml::table& root) {
  ModelConfig config;
  config.origin = origin_;
  check_keys(root,
             {"name", "description", "default_data", "fan_out", "inputs", "layers", "outputs",
              "tasks", "balancer", "sharing"},
             "config");
  config.name = get_name(root, "name", "config");
  config.description = get_string(root, "description", "config", false).value_or("");
  config.default_data = get_string(root, "default_data", "config", false).value_or("");

  for (const toml::table* t : tables(root, "inputs", true)) read_input(*t, config);
  const auto layer_tables = tables(root, "layers", true);
  for (size_t i = 0; i < layer_tables.size(); ++i) read_layer(*layer_tables[i], i, config);

  for (const toml::table* t : tables(root, "outputs", true)) {
    const std::string context = "[[outputs]] entry";
    check_keys(*t, {"name", "layer"}, context);
    const std::string name = get_name(*t, "name", context);
    const std::string out_context = cat("output '", name, "'");
    claim(outputs_, name, t->get("name")->source(), "output");
    const std::string layer = *get_string(*t, "layer", out_context, true);
    if (!layers_.count(layer))
      fail_at(t->get("layer")->source(), out_context, ": layer '", layer, "' is not defined",
              values_.count(layer) ? " (it is a model input; outputs name layers)" : "",
              suggestion(layer, [&] {
                std::vector<std::string> names;
                for (const auto& [n, spec] : layers_) names.push_back(n);
                return names;
              }()));
    config.outputs.emplace_back(name, layer);
    config.source_positions["output " + name] = at(t->source());
  }

  for (const toml::table* t : tables(root, "tasks", true)) read_task(*t, config);
  if (const toml::node* node = root.get("balancer")) read_balancer(*node, config);
  if (const toml::node* node = root.get("sharing")) read_sharing(*node, config);

  if (const toml::node* node = root.get("fan_out")) {
    config.fan_out = string_of(*node, "fan_out", "config");
    if (!values_.count(config.fan_out))
      fail_at(node->source(), "config: fan_out '", config.fan_out,
              "' is not a model input or a layer");
  }
  return config;
}

void ConfigReader::read_input(const toml::table& t, ModelConfig& config) {
  check_keys(t, {"name", "shape"}, "[[inputs]] entry");
  const std::string name = get_name(t, "name", "[[inputs]] entry");
  const std::string context = cat("input '", name, "'");
  claim(values_, name, t.get("name")->source(), "input");
  Shape shape;
  if (const toml::node* node = t.get("shape")) {
    const auto* array = node->as_array();
    if (!array)
      fail_at(node->source(), context, ": 'shape' must be an array of integers, got ",
              type_name(*node));
    if (array->empty() || array->size() >= size_t(Shape::kMaxRank))
      fail_at(node->source(), context, ": 'shape' must have 1 to ", Shape::kMaxRank - 1,
              " dimensions, got ", array->size());
    for (const toml::node& d : *array) {
      const auto* v = d.as_integer();
      if (!v || v->get() <= 0)
        fail_at(d.source(), context, ": 'shape' must hold positive integers, got ",
                v ? cat(v->get()) : std::string(type_name(d)));
      if (v->get() > kMaxSize)
        fail_at(d.source(), context, ": 'shape' sizes must be at most ", kMaxSize, ", got ",
                v->get());
      shape.push_back(v->get());
    }
  }
  config.input_names.push_back(name);
  config.input_shapes.push_back(shape);
  config.source_positions["input " + name] = at(t.source());
}

void ConfigReader::read_layer(const toml::table& t, size_t index, ModelConfig& config) {
  const std::string entry = cat("layer ", index + 1);
  auto spec = std::make_shared<LayerSpec>();
  spec->name = get_name(t, "name", entry);
  const std::string context = cat("layer '", spec->name, "'");
  if (activation_names_.count(spec->name))
    fail_at(t.get("name")->source(), context,
            ": the name is taken by the activation the engine "
            "adds after an earlier layer with activation = \"relu\"; choose another");
  claim(values_, spec->name, t.get("name")->source(), "layer");

  // A sharing layer takes its type and settings from the layer it shares.
  const LayerSpec* shared = nullptr;
  if (const auto shares = get_string(t, "shares", context, false)) {
    const auto it = layers_.find(*shares);
    if (it == layers_.end())
      fail_at(t.get("shares")->source(), context, ": shares '", *shares,
              "', which is not an earlier layer",
              values_.count(*shares) && *shares != spec->name ? " (it is a model input)" : "");
    shared = it->second;
    const std::string name = spec->name;
    *spec = *shared;  // type and settings
    spec->name = name;
    spec->shares = shared->shares.empty() ? shared->name : shared->shares;
  }

  std::vector<std::string> type_names;
  for (const auto& info : layer_types()) type_names.push_back(info.name);
  if (!shared && !t.get("type")) {
    // Without a type, a misspelt `type` reads better as an unknown key than a missing one.
    std::vector<std::string> any = {"name", "type", "input", "inputs", "shares"};
    for (const auto& info : layer_types())
      any.insert(any.end(), info.keys.begin(), info.keys.end());
    check_keys(t, any, context);
  }
  if (const auto type = get_string(t, "type", context, shared == nullptr)) {
    const auto it = std::find(type_names.begin(), type_names.end(), *type);
    if (it == type_names.end())
      fail_at(t.get("type")->source(), context, ": unknown layer type '", *type, "'",
              suggestion(*type, type_names), " (known types: ", join(type_names), ")");
    const LayerType parsed = layer_types()[size_t(it - type_names.begin())].type;
    if (shared && parsed != shared->type)
      fail_at(t.get("type")->source(), context, ": type '", *type, "' differs from the type '",
              type_info(shared->type).name, "' of the shared layer '", spec->shares, "'");
    spec->type = parsed;
  }
  const TypeInfo& info = type_info(spec->type);

  std::vector<std::string> allowed = {"name", "type", info.multi_input ? "inputs" : "input",
                                      "shares"};
  if (!shared) allowed.insert(allowed.end(), info.keys.begin(), info.keys.end());
  check_keys(t, allowed, context,
             shared ? cat("a layer that shares '", spec->shares, "' takes only ", join(allowed),
                          "; its settings come from the shared layer")
                    : cat(info.name, " layers take: ", join(allowed)));

  // Inputs: `inputs = [..]` for add/concat/mixture/cross_stitch, else `input` (default: the
  // previous layer, or the only model input for the first layer).
  const auto check_ref = [&](const std::string& ref, const toml::source_region& where) {
    if (values_.count(ref) && ref != spec->name) return;
    std::vector<std::string> known;
    for (const auto& [n, w] : values_)
      if (n != spec->name) known.push_back(n);
    fail_at(where, context, ": input '", ref, "' is not a model input or an earlier layer",
            ref == spec->name ? " (a layer cannot read itself)" : suggestion(ref, known),
            " (defined so far: ", join(known), ")");
  };
  spec->inputs.clear();
  if (info.multi_input) {
    const toml::node* node = require(t, "inputs", context);
    const auto* array = node->as_array();
    if (!array)
      fail_at(node->source(), context, ": 'inputs' must be an array of names, got ",
              type_name(*node));
    const size_t most = spec->type == LayerType::Add || spec->type == LayerType::Mixture ? 2 : 8;
    if (array->size() < 2 || array->size() > most)
      fail_at(node->source(), context, ": ", info.name, " takes ",
              most == 2 ? "exactly 2" : "2 to 8", " inputs, got ", array->size());
    for (const toml::node& element : *array) {
      spec->inputs.push_back(string_of(element, "inputs", context));
      check_ref(spec->inputs.back(), element.source());
    }
  } else if (const toml::node* node = t.get("input")) {
    spec->inputs.push_back(string_of(*node, "input", context));
    check_ref(spec->inputs.back(), node->source());
  } else if (!config.layers.empty()) {
    spec->inputs.push_back(config.layers.back()->name);
  } else if (config.input_names.size() == 1) {
    spec->inputs.push_back(config.input_names.front());
  } else {
    fail_at(t.source(), context, ": missing required key 'input' (the model has several inputs: ",
            join(config.input_names), ")");
  }

  if (!shared) read_layer_settings(t, context, *spec);
  if (!shared && spec->activation == Activation::ReLU) {
    const std::string act = spec->name + "_relu";
    if (values_.count(act))
      fail_at(t.source(), context, ": activation = \"relu\" adds a layer named '", act,
              "', which is already taken");
    activation_names_.insert(act);
  }
  config.source_positions["layer " + spec->name] = at(t.source());
  layers_[spec->name] = spec.get();
  config.layers.push_back(std::move(spec));
}

void ConfigReader::read_layer_settings(const toml::table& t, const std::string& context,
                                       LayerSpec& spec) {
  const TypeInfo& info = type_info(spec.type);
  for (const char* key : info.required) require(t, key, context);
  const auto activation = [&] {
    const auto a = get_choice(t, "activation", context, {"relu", "linear"});
    return a && *a == "relu" ? Activation::ReLU : Activation::None;
  };
  switch (spec.type) {
    case LayerType::Conv2D:
      spec.filters = *get_int(t, "filters", context, 1);
      spec.kernel = *get_int(t, "kernel", context, 1);
      spec.stride = get_int(t, "stride", context, 1).value_or(1);
      spec.padding =
          get_choice(t, "padding", context, {"valid", "same"}).value_or("valid") == "same"
              ? Padding::Same
              : Padding::Valid;
      spec.activation = activation();
      spec.use_bias = get_bool(t, "use_bias", context).value_or(true);
      break;
    case LayerType::MaxPool2D:
      spec.pool = get_int(t, "pool", context, 1).value_or(2);
      spec.stride = get_int(t, "stride", context, 1).value_or(0);
      break;
    case LayerType::Dense:
      spec.units = *get_int(t, "units", context, 1);
      spec.activation = activation();
      spec.use_bias = get_bool(t, "use_bias", context).value_or(true);
      break;
    case LayerType::BatchNorm:
      spec.momentum = get_number(t, "momentum", context).value_or(0.99);
      spec.epsilon = get_number(t, "epsilon", context).value_or(1e-3);
      if (!(spec.momentum >= 0 && spec.momentum < 1))
        fail_at(t.get("momentum")->source(), context, ": 'momentum' must be in [0, 1), got ",
                spec.momentum);
      if (!(spec.epsilon > 0 && std::isfinite(spec.epsilon)))
        fail_at(t.get("epsilon")->source(), context, ": 'epsilon' must be positive, got ",
                spec.epsilon);
      break;
    case LayerType::Dropout:
      spec.rate = *get_number(t, "rate", context);
      if (!(spec.rate >= 0 && spec.rate < 1))
        fail_at(t.get("rate")->source(), context, ": 'rate' must be in [0, 1), got ", spec.rate);
      break;
    case LayerType::CrossStitch:
      spec.self_weight = get_number(t, "self_weight", context).value_or(0.9);
      if (!(spec.self_weight > 0 && spec.self_weight <= 1))
        fail_at(t.get("self_weight")->source(), context, ": 'self_weight' must be in (0, 1], got ",
                spec.self_weight);
      break;
    case LayerType::ReLU:
    case LayerType::Flatten:
    case LayerType::Add:
    case LayerType::Concat:
    case LayerType::Softmax:
    case LayerType::Mixture:
      break;
  }
}

void ConfigReader::read_task(const toml::table& t, ModelConfig& config) {
  check_keys(t, {"name", "output", "loss", "weight", "label", "metrics"}, "[[tasks]] entry");
  Task task;
  task.name = get_name(t, "name", "[[tasks]] entry");
  const std::string context = cat("task '", task.name, "'");
  claim(tasks_, task.name, t.get("name")->source(), "task");

  task.output = *get_string(t, "output", context, true);
  if (!outputs_.count(task.output)) {
    std::vector<std::string> known;
    for (const auto& [name, spec] : config.outputs) known.push_back(name);
    fail_at(t.get("output")->source(), context, ": output '", task.output,
            "' is not declared in [[outputs]]", suggestion(task.output, known),
            " (outputs: ", join(known), ")");
  }
  require(t, "loss", context);
  task.loss = parse_loss(
      *get_choice(t, "loss", context, {"softmax_cross_entropy", "binary_cross_entropy", "mse"}));
  task.weight = get_number(t, "weight", context).value_or(1.0);
  if (!(task.weight >= 0 && std::isfinite(task.weight)))
    fail_at(t.get("weight")->source(), context, ": 'weight' must be finite and non-negative, got ",
            task.weight);
  task.label = get_string(t, "label", context, false).value_or("");
  if (t.get("label") && task.label.empty())
    fail_at(t.get("label")->source(), context, ": 'label' must not be empty");
  if (const toml::node* node = t.get("metrics")) {
    const auto* array = node->as_array();
    if (!array)
      fail_at(node->source(), context, ": 'metrics' must be an array of strings, got ",
              type_name(*node));
    for (const toml::node& element : *array) {
      const std::string m = string_of(element, "metrics", context);
      if (m != "accuracy" && m != "mae")
        fail_at(element.source(), context, ": unknown metric '", m,
                "' (known metrics: accuracy, mae)");
      if (m == "accuracy" && task.loss == LossKind::MeanSquaredError)
        fail_at(element.source(), context,
                ": accuracy is not defined for a regression (mse) task; use mae");
      task.metrics.push_back(m == "accuracy" ? MetricKind::Accuracy
                                             : MetricKind::MeanAbsoluteError);
    }
  }
  task.target =
      task.loss == LossKind::SoftmaxCrossEntropy ? TargetKind::ClassIndex : TargetKind::Values;
  config.tasks.push_back(std::move(task));
  config.source_positions["task " + config.tasks.back().name] = at(t.source());
}

// The keys each strategy's [balancer] table takes besides `name`.
std::vector<std::string> balancer_keys(const std::string& strategy) {
  if (strategy == "dynamic") return {"step", "schedule"};
  if (strategy == "uncertainty") return {"lr"};
  if (strategy == "gradnorm") return {"alpha", "lr"};
  if (strategy == "dwa") return {"temperature"};
  if (strategy == "mgda") return {"normalization"};
  if (strategy == "cagrad") return {"c"};
  if (strategy == "famo") return {"lr", "decay"};
  if (strategy == "imtl") return {"mode", "lr"};
  if (strategy == "aligned-mtl") return {"scale"};
  return {};
}

void ConfigReader::read_balancer(const toml::node& node, ModelConfig& config) {
  const auto* t = node.as_table();
  if (!t) fail_at(node.source(), "'balancer' must be a table ([balancer]), got ", type_name(node));
  const std::string context = "[balancer]";
  const std::string name = *get_string(*t, "name", context, true);
  const auto& known = balancer_names();
  if (std::find(known.begin(), known.end(), name) == known.end())
    fail_at(t->get("name")->source(), context, ": unknown balancer '", name, "'",
            suggestion(name, known), " (known: ", join(known), ")");
  std::vector<std::string> allowed = {"name"};
  for (const auto& k : balancer_keys(name)) allowed.push_back(k);
  check_keys(*t, allowed, cat("balancer '", name, "'"), cat(name, " takes: ", join(allowed)));
  BalancerOptions& b = config.balancer;
  b = BalancerOptions{};
  b.name = name;
  const std::string where = cat("balancer '", name, "'");
  if (auto v = get_number(*t, "lr", where)) b.lr = *v;
  if (auto v = get_number(*t, "alpha", where)) b.alpha = *v;
  if (auto v = get_number(*t, "temperature", where)) b.temperature = *v;
  if (auto v = get_number(*t, "step", where)) b.step = *v;
  if (auto v = get_choice(*t, "normalization", where, {"none", "l2", "loss", "loss+"}))
    b.normalization = *v;
  if (auto v = get_number(*t, "c", where)) b.c = *v;
  if (auto v = get_number(*t, "decay", where)) b.decay = *v;
  if (auto v = get_choice(*t, "mode", where, {"hybrid", "gradient", "loss"})) b.imtl_mode = *v;
  if (auto v = get_choice(*t, "scale", where, {"min", "median", "rmse"})) b.scale = *v;
  if (const toml::node* sched = t->get("schedule")) {
    const auto* table = sched->as_table();
    if (!table)
      fail_at(sched->source(), where,
              ": 'schedule' must be a table of weight lists, e.g. "
              "{ parity = [1.0, 0.8, 0.5] }, got ",
              type_name(*sched));
    for (const auto& [key, list] : *table) {
      const std::string task(key.str());
      if (!tasks_.count(task)) {
        std::vector<std::string> names;
        for (const auto& [n, w] : tasks_) names.push_back(n);
        fail_at(key.source(), where, ": schedule for task '", task, "', which is not a task",
                suggestion(task, names), " (tasks: ", join(names), ")");
      }
      const auto* array = list.as_array();
      if (!array || array->empty())
        fail_at(list.source(), where, ": the schedule of '", task,
                "' must be a non-empty array of weights (one per epoch)");
      std::vector<double> weights;
      for (const toml::node& element : *array) {
        std::optional<double> w;
        if (const auto* f = element.as_floating_point()) w = f->get();
        if (const auto* i = element.as_integer()) w = double(i->get());
        if (!w || !(*w >= 0 && std::isfinite(*w)))
          fail_at(element.source(), where, ": the schedule of '", task,
                  "' must hold finite non-negative numbers");
        weights.push_back(*w);
      }
      b.schedule[task] = weights;
    }
  }
  try {
    make_balancer(b);  // the options' ranges
  } catch (const Error& e) {
    fail_at(t->source(), e.what());
  }
}

void ConfigReader::read_sharing(const toml::node& node, ModelConfig& config) {
  const auto* t = node.as_table();
  if (!t) fail_at(node.source(), "'sharing' must be a table ([sharing]), got ", type_name(node));
  const std::string context = "[sharing]";
  check_keys(*t,
             {"mode", "branch_after", "soft_strength", "cross_stitch_after",
              "cross_stitch_self_weight", "experts"},
             context);
  SharingOptions& s = config.sharing;
  if (auto v = get_choice(*t, "mode", context, sharing_modes())) s.mode = *v;
  if (const toml::node* b = t->get("branch_after")) {
    if (const auto* i = b->as_integer()) {
      s.branch_after = std::to_string(i->get());
    } else if (const auto* name = b->as_string()) {
      if (!layers_.count(name->get()))
        fail_at(b->source(), context, ": branch_after '", name->get(), "' is not a layer");
      s.branch_after = name->get();
    } else {
      fail_at(b->source(), context, ": 'branch_after' must be a count of trunk layers or a "
              "layer name, got ", type_name(*b));
    }
  }
  if (auto v = get_number(*t, "soft_strength", context)) s.soft_strength = *v;
  if (auto v = get_number(*t, "cross_stitch_self_weight", context)) s.cross_stitch_self_weight = *v;
  if (auto v = get_int(*t, "experts", context, 0)) s.experts = *v;
  if (const toml::node* list = t->get("cross_stitch_after")) {
    const auto* array = list->as_array();
    if (!array)
      fail_at(list->source(), context, ": 'cross_stitch_after' must be an array of layer names");
    for (const toml::node& element : *array) {
      const std::string name = string_of(element, "cross_stitch_after", context);
      if (!layers_.count(name))
        fail_at(element.source(), context, ": cross_stitch_after names '", name,
                "', which is not a layer");
      s.cross_stitch_after.push_back(name);
    }
  }
  try {
    validate_sharing(s);
  } catch (const Error& e) {
    fail_at(t->source(), context, ": ", e.what());
  }
  config.source_positions["sharing"] = at(t->source());
}

// ---- writing ---------------------------------------------------------------------------------

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// The shortest text that reads back as the same double, always with a '.' or exponent.
std::string number(double v) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, v);
  std::string s(buffer, result.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// [balancer] with the keys its strategy takes, defaults omitted; nothing for plain static weights.
void write_balancer(std::ostringstream& out, const BalancerOptions& b) {
  if (b.name == "static") return;
  const BalancerOptions d;
  out << "\n[balancer]\nname = " << quote(b.name) << "\n";
  for (const auto& key : balancer_keys(b.name)) {
    if (key == "lr" && b.lr != d.lr) out << "lr = " << number(b.lr) << "\n";
    if (key == "alpha" && b.alpha != d.alpha) out << "alpha = " << number(b.alpha) << "\n";
    if (key == "temperature" && b.temperature != d.temperature)
      out << "temperature = " << number(b.temperature) << "\n";
    if (key == "step" && b.step != d.step) out << "step = " << number(b.step) << "\n";
    if (key == "normalization" && b.normalization != d.normalization)
      out << "normalization = " << quote(b.normalization) << "\n";
    if (key == "c" && b.c != d.c) out << "c = " << number(b.c) << "\n";
    if (key == "decay" && b.decay != d.decay) out << "decay = " << number(b.decay) << "\n";
    if (key == "mode" && b.imtl_mode != d.imtl_mode) out << "mode = " << quote(b.imtl_mode) << "\n";
    if (key == "scale" && b.scale != d.scale) out << "scale = " << quote(b.scale) << "\n";
    if (key == "schedule" && !b.schedule.empty()) {
      out << "schedule = { ";
      bool first = true;
      for (const auto& [task, weights] : b.schedule) {
        out << (first ? "" : ", ") << quote(task) << " = [";
        for (size_t i = 0; i < weights.size(); ++i) out << (i ? ", " : "") << number(weights[i]);
        out << "]";
        first = false;
      }
      out << " }\n";
    }
  }
}

void write_sharing(std::ostringstream& out, const SharingOptions& s) {
  if (s.is_default()) return;
  const SharingOptions d;
  out << "\n[sharing]\nmode = " << quote(s.mode) << "\n";
  if (!s.branch_after.empty()) {
    const bool count = s.branch_after.find_first_not_of("0123456789") == std::string::npos;
    out << "branch_after = " << (count ? s.branch_after : quote(s.branch_after)) << "\n";
  }
  if (s.mode == "soft") out << "soft_strength = " << number(s.soft_strength) << "\n";
  if (s.mode == "cross_stitch") {
    if (!s.cross_stitch_after.empty()) {
      out << "cross_stitch_after = [";
      for (size_t i = 0; i < s.cross_stitch_after.size(); ++i)
        out << (i ? ", " : "") << quote(s.cross_stitch_after[i]);
      out << "]\n";
    }
    if (s.cross_stitch_self_weight != d.cross_stitch_self_weight)
      out << "cross_stitch_self_weight = " << number(s.cross_stitch_self_weight) << "\n";
  }
  if (s.mode == "mmoe") out << "experts = " << s.experts << "\n";
}

std::string padding_name(Padding p) { return p == Padding::Same ? "same" : "valid"; }

void write_layer(std::ostringstream& out, const LayerSpec& spec) {
  const TypeInfo& info = type_info(spec.type);
  out << "\n[[layers]]\nname = " << quote(spec.name) << "\n";
  if (spec.shares.empty()) out << "type = " << quote(info.name) << "\n";
  if (info.multi_input) {
    out << "inputs = [";
    for (size_t i = 0; i < spec.inputs.size(); ++i) out << (i ? ", " : "") << quote(spec.inputs[i]);
    out << "]\n";
  } else {
    out << "input = " << quote(spec.inputs.at(0)) << "\n";
  }
  if (!spec.shares.empty()) {
    out << "shares = " << quote(spec.shares) << "\n";
    return;
  }
  const LayerSpec defaults;
  switch (spec.type) {
    case LayerType::Conv2D:
      out << "filters = " << spec.filters << "\nkernel = " << spec.kernel << "\n";
      if (spec.stride != 1) out << "stride = " << spec.stride << "\n";
      if (spec.padding != Padding::Valid)
        out << "padding = " << quote(padding_name(spec.padding)) << "\n";
      break;
    case LayerType::MaxPool2D:
      out << "pool = " << spec.pool << "\n";
      if (spec.stride != 0) out << "stride = " << spec.stride << "\n";
      break;
    case LayerType::Dense:
      out << "units = " << spec.units << "\n";
      break;
    case LayerType::BatchNorm:
      if (spec.momentum != defaults.momentum) out << "momentum = " << number(spec.momentum) << "\n";
      if (spec.epsilon != defaults.epsilon) out << "epsilon = " << number(spec.epsilon) << "\n";
      break;
    case LayerType::Dropout:
      out << "rate = " << number(spec.rate) << "\n";
      break;
    case LayerType::CrossStitch:
      if (spec.self_weight != defaults.self_weight)
        out << "self_weight = " << number(spec.self_weight) << "\n";
      break;
    case LayerType::ReLU:
    case LayerType::Flatten:
    case LayerType::Add:
    case LayerType::Concat:
    case LayerType::Softmax:
    case LayerType::Mixture:
      break;
  }
  if (spec.type == LayerType::Conv2D || spec.type == LayerType::Dense) {
    if (spec.activation == Activation::ReLU) out << "activation = \"relu\"\n";
    if (!spec.use_bias) out << "use_bias = false\n";
  }
}

// ---- building --------------------------------------------------------------------------------

LayerRef make_layer(const LayerSpec& spec) {
  switch (spec.type) {
    case LayerType::Conv2D:
      return layers::conv2d(spec.filters, spec.kernel,
                            {.stride = spec.stride,
                             .padding = spec.padding,
                             .activation = spec.activation,
                             .use_bias = spec.use_bias,
                             .name = spec.name});
    case LayerType::MaxPool2D:
      return layers::max_pool2d(spec.pool, spec.stride, spec.name);
    case LayerType::Dense:
      return layers::dense(spec.units, {spec.activation, spec.use_bias, spec.name});
    case LayerType::ReLU:
      return layers::relu(spec.name);
    case LayerType::Flatten:
      return layers::flatten(spec.name);
    case LayerType::Add:
      return layers::add(spec.name);
    case LayerType::Concat:
      return layers::concat(spec.name);
    case LayerType::BatchNorm:
      return layers::batch_norm(
          {.momentum = spec.momentum, .epsilon = spec.epsilon, .name = spec.name});
    case LayerType::Dropout:
      return layers::dropout(spec.rate, spec.name);
    case LayerType::Softmax:
      return layers::softmax(spec.name);
    case LayerType::Mixture:
      return layers::mixture(spec.name);
    case LayerType::CrossStitch:
      return layers::cross_stitch({.self_weight = spec.self_weight, .name = spec.name});
  }
  fail("internal: unknown layer type");
}

std::string position(const ModelConfig& config, const std::string& key) {
  const auto it = config.source_positions.find(key);
  return it != config.source_positions.end() ? it->second : config.origin;
}

}  // namespace

ModelConfig parse_config(const std::string& toml_text, const std::string& origin) {
  check_toml_input(toml_text, origin);  // keeps toml++ 3.3.0 off its undefined behaviour
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    fail(origin, ":", e.source().begin.line, ":", e.source().begin.column, ": ", e.description());
  }
  return ConfigReader(origin).read(root);
}

ModelConfig load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open config file '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("cannot read config file '", path, "'");
  return parse_config(text.str(), path);
}

std::vector<PresetInfo> list_presets() {
  std::vector<PresetInfo> out;
  for (const auto& [name, text] : embedded_preset_configs()) {
    const ModelConfig config = parse_config(std::string(text), cat("preset ", name));
    out.push_back({config.name, config.description});
  }
  return out;
}

std::string preset_toml(const std::string& name) {
  for (const auto& [preset, text] : embedded_preset_configs())
    if (preset == name) return std::string(text);
  fail("unknown preset '", name,
       "' (known presets: ", join(embedded_preset_configs(), [](const auto& p) { return p.first; }),
       ")");
}

ModelConfig preset_config(const std::string& name) {
  return parse_config(preset_toml(name), cat("preset ", name));
}

Model build_model(const ModelConfig& written, const std::map<std::string, Shape>& input_shapes) {
  const ModelConfig config = apply_sharing(written);
  ModelBuilder builder;
  std::map<std::string, Value> values;
  for (size_t i = 0; i < config.input_names.size(); ++i) {
    const std::string& name = config.input_names[i];
    const Shape declared = i < config.input_shapes.size() ? config.input_shapes[i] : Shape{};
    const std::string where = position(config, "input " + name);
    Shape shape = declared;
    if (const auto it = input_shapes.find(name); it != input_shapes.end()) {
      if (declared.rank() > 0 && !(declared == it->second))
        fail(where, ": input '", name, "' is declared with shape ", declared,
             " but the data gives ", it->second);
      shape = it->second;
    } else if (declared.rank() == 0) {
      fail(where, ": input '", name, "' has no shape: the data has no input of that name (it has: ",
           join(input_shapes, [](const auto& kv) { return kv.first; }), ")");
    }
    try {
      values[name] = builder.input(name, shape);
    } catch (const Error& e) {
      fail(where, ": ", e.what());
    }
  }

  std::map<std::string, LayerRef> refs;  // by config layer name (sharing layers included)
  for (const auto& spec : config.layers) {
    const std::string where = position(config, "layer " + spec->name);
    try {
      std::vector<Value> xs;
      for (const auto& in : spec->inputs) {
        const auto it = values.find(in);
        if (it == values.end()) fail("layer '", spec->name, "': input '", in, "' is not defined");
        xs.push_back(it->second);
      }
      LayerRef ref;
      if (spec->shares.empty()) {
        ref = make_layer(*spec);
      } else {
        const auto it = refs.find(spec->shares);
        if (it == refs.end())
          fail("layer '", spec->name, "': shares undefined layer '", spec->shares, "'");
        ref = it->second;
      }
      values[spec->name] = ref(xs);
      refs[spec->name] = ref;
    } catch (const Error& e) {
      fail(where, ": ", e.what());
    }
  }

  std::vector<NamedOutput> outputs;
  for (const auto& [name, layer] : config.outputs) {
    const auto it = values.find(layer);
    if (it == values.end())
      fail(position(config, "output " + name), ": output '", name, "': layer '", layer,
           "' is not defined");
    outputs.push_back({name, it->second});
  }
  try {
    return builder.build(std::move(outputs));
  } catch (const Error& e) {
    fail(config.origin, ": ", e.what());
  }
}

std::string fan_out_value(const ModelConfig& written) {
  const ModelConfig config = apply_sharing(written);  // copies leave the fan-out to the network
  if (config.fan_out.empty()) return "";
  std::map<std::string, int> calls;  // per layer object (root name)
  for (const auto& spec : config.layers) {
    const std::string& root = spec->shares.empty() ? spec->name : spec->shares;
    const int call = calls[root]++;
    if (spec->name != config.fan_out) continue;
    const std::string base = spec->activation == Activation::ReLU ? root + "_relu" : root;
    return call ? cat(base, "#", call) : base;
  }
  return config.fan_out;  // a model input
}

std::string to_toml(const ModelConfig& config) {
  std::ostringstream out;
  out << "# polytask model config (format: models/README.md)\n";
  out << "name = " << quote(config.name) << "\n";
  if (!config.description.empty()) out << "description = " << quote(config.description) << "\n";
  if (!config.default_data.empty()) out << "default_data = " << quote(config.default_data) << "\n";
  if (!config.fan_out.empty()) out << "fan_out = " << quote(config.fan_out) << "\n";
  for (size_t i = 0; i < config.input_names.size(); ++i) {
    out << "\n[[inputs]]\nname = " << quote(config.input_names[i]) << "\n";
    if (i < config.input_shapes.size() && config.input_shapes[i].rank() > 0) {
      out << "shape = [";
      for (int d = 0; d < config.input_shapes[i].rank(); ++d)
        out << (d ? ", " : "") << config.input_shapes[i][d];
      out << "]\n";
    }
  }
  for (const auto& spec : config.layers) write_layer(out, *spec);
  for (const auto& [name, layer] : config.outputs)
    out << "\n[[outputs]]\nname = " << quote(name) << "\nlayer = " << quote(layer) << "\n";
  for (const Task& task : config.tasks) {
    out << "\n[[tasks]]\nname = " << quote(task.name) << "\noutput = " << quote(task.output_name())
        << "\nloss = " << quote(loss_name(task.loss)) << "\nweight = " << number(task.weight)
        << "\n";
    if (!task.label.empty()) out << "label = " << quote(task.label) << "\n";
    if (!task.metrics.empty()) {
      out << "metrics = [";
      for (size_t m = 0; m < task.metrics.size(); ++m)
        out << (m ? ", " : "") << quote(metric_name(task.metrics[m]));
      out << "]\n";
    }
  }
  write_balancer(out, config.balancer);
  write_sharing(out, config.sharing);
  return out.str();
}

}  // namespace polytask::models
