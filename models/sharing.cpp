// The [sharing] modes (models/sharing.h), carried out as a rewrite of the config's layers.
#include "models/sharing.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "kernels/error.h"
#include "models/config.h"
#include "models/layer_spec.h"

namespace polytask::models {

namespace {

// The most experts an MMoE may have: the experts' concatenation takes at most 8 parts.
constexpr int64_t kMaxExperts = 8;

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Where cross-stitch units go by default: after every pooling and fully connected layer, as
// Misra et al. placed them in AlexNet (after pool1, pool2, pool5, fc6, fc7) — not after every
// convolution and normalisation, which would mix full-resolution activations several times per
// block at little gain.
bool ends_a_block(const LayerSpec& spec) {
  return spec.shares.empty() && (spec.type == LayerType::MaxPool2D || spec.type == LayerType::Dense);
}

bool has_own_parameters(const LayerSpec& spec) {
  if (!spec.shares.empty()) return false;
  return spec.type == LayerType::Conv2D || spec.type == LayerType::Dense ||
         spec.type == LayerType::BatchNorm;
}

// The rewrite of one config: which layers form the trunk, which are copied, and the new layers.
class SharingRewrite {
 public:
  explicit SharingRewrite(const ModelConfig& config) : config_(config), opt_(config.sharing) {}

  ModelConfig run();
  std::vector<std::vector<std::string>> soft_groups();

 private:
  [[noreturn]] void refuse(const std::string& message) const {
    fail(config_.origin, ": [sharing] ", opt_.mode, ": ", message);
  }
  void find_trunk();
  int64_t shared_count() const;
  std::vector<std::string> units() const;  // the copies' suffixes: tasks or experts
  // The name a layer of task t (or expert e) reads for `name`.
  std::string reader_name(const std::string& name, size_t unit) const;
  std::string head_input(const std::string& name, const std::string& reader) const;
  std::string task_input(const std::string& name, size_t task) const;
  void add(std::shared_ptr<LayerSpec> spec, const std::string& position_of);
  void add_mmoe_tail();

  const ModelConfig& config_;
  const SharingOptions& opt_;
  std::map<std::string, const LayerSpec*> by_name_;
  std::vector<std::string> trunk_;               // config order
  std::map<std::string, size_t> task_of_layer_;  // head layers: the one task they serve
  std::set<std::string> copied_;
  std::set<std::string> stitched_;
  std::string fan_out_;  // the trunk's last layer
  ModelConfig out_;
};

void SharingRewrite::find_trunk() {
  for (const auto& spec : config_.layers) by_name_[spec->name] = spec.get();
  const auto ancestors = [&](const std::string& layer) {
    std::set<std::string> seen;
    std::vector<std::string> stack{layer};
    while (!stack.empty()) {
      const std::string n = stack.back();
      stack.pop_back();
      const auto it = by_name_.find(n);
      if (it == by_name_.end() || !seen.insert(n).second) continue;
      for (const auto& in : it->second->inputs) stack.push_back(in);
    }
    return seen;  // layers only (model inputs are not in by_name_)
  };
  std::map<std::string, std::string> output_layer(config_.outputs.begin(), config_.outputs.end());
  std::map<std::string, std::set<size_t>> tasks_of;
  for (size_t t = 0; t < config_.tasks.size(); ++t)
    for (const auto& layer : ancestors(output_layer.at(config_.tasks[t].output_name())))
      tasks_of[layer].insert(t);
  for (const auto& spec : config_.layers) {
    const auto& tasks = tasks_of[spec->name];
    if (tasks.size() == config_.tasks.size()) {
      trunk_.push_back(spec->name);
    } else if (tasks.size() == 1) {
      task_of_layer_[spec->name] = *tasks.begin();
    } else if (tasks.size() > 1) {
      std::vector<std::string> names;
      for (size_t t : tasks) names.push_back(config_.tasks[t].name);
      refuse("layer '" + spec->name + "' serves tasks " + join_names(names) +
             " but not all: a layer below the trunk must belong to one task");
    }
  }
  if (trunk_.empty()) refuse("the tasks share no layer: there is no trunk to copy");
  fan_out_ = trunk_.back();
}

int64_t SharingRewrite::shared_count() const {
  const int64_t n = int64_t(trunk_.size());
  const std::string& b = opt_.branch_after;
  if (b.empty()) return opt_.mode == "hard" ? n : 0;
  int64_t k = -1;
  const auto [end, error] = std::from_chars(b.data(), b.data() + b.size(), k);
  if (error == std::errc() && end == b.data() + b.size()) {
    if (k < 0 || k > n)
      refuse("branch_after " + b + " is outside 0.." + std::to_string(n) + " (the trunk: " +
             join_names(trunk_) + ")");
    return k;
  }
  const auto it = std::find(trunk_.begin(), trunk_.end(), b);
  if (it == trunk_.end())
    refuse("branch_after '" + b + "' is not a trunk layer (the trunk: " + join_names(trunk_) + ")");
  return int64_t(it - trunk_.begin()) + 1;
}

std::vector<std::string> SharingRewrite::units() const {
  std::vector<std::string> out;
  if (opt_.mode == "mmoe") {
    for (int64_t e = 1; e <= opt_.experts; ++e) out.push_back("expert" + std::to_string(e));
  } else {
    for (const auto& t : config_.tasks) out.push_back(t.name);
  }
  return out;
}

std::string SharingRewrite::reader_name(const std::string& name, size_t unit) const {
  if (!copied_.count(name)) return name;
  const std::string copy = name + "@" + units()[unit];
  return stitched_.count(name) ? "stitch-" + copy : copy;
}

// A head layer (or an output) of one task reading `name`.
std::string SharingRewrite::head_input(const std::string& name, const std::string& reader) const {
  if (!copied_.count(name)) return name;
  const auto it = task_of_layer_.find(reader);
  if (it == task_of_layer_.end())
    refuse("'" + reader + "' reads the unshared trunk layer '" + name +
           "' but belongs to no single task");
  return task_input(name, it->second);
}

// What task `task`'s head reads for the unshared trunk layer `name`.
std::string SharingRewrite::task_input(const std::string& name, size_t task) const {
  if (opt_.mode != "mmoe") return reader_name(name, task);
  if (name != fan_out_)
    refuse("task '" + config_.tasks[task].name + "' reads trunk layer '" + name + "'; with "
           "experts, heads may read only the trunk's last layer '" + fan_out_ + "'");
  return "mixture@" + config_.tasks[task].name;
}

void SharingRewrite::add(std::shared_ptr<LayerSpec> spec, const std::string& position_of) {
  const auto it = config_.source_positions.find(position_of);
  out_.source_positions["layer " + spec->name] =
      it != config_.source_positions.end() ? it->second : config_.origin;
  out_.layers.push_back(std::move(spec));
}

// MMoE after the experts: their concatenation, and per task a gate (flatten of the branch
// point, dense to one logit per expert, softmax) and the gated mixture the heads read.
void SharingRewrite::add_mmoe_tail() {
  const int64_t k = shared_count();
  std::string gate_source;
  if (k > 0) {
    gate_source = trunk_[size_t(k - 1)];
  } else if (config_.input_names.size() == 1) {
    gate_source = config_.input_names[0];
  } else {
    refuse("the gates read the branch point, and with branch_after 0 and several model inputs (" +
           join_names(config_.input_names) + ") there is none; share at least one layer");
  }
  auto experts = std::make_shared<LayerSpec>();
  experts->name = "experts";
  experts->type = LayerType::Concat;
  for (const auto& unit : units()) experts->inputs.push_back(fan_out_ + "@" + unit);
  add(experts, "layer " + fan_out_);
  for (const auto& task : config_.tasks) {
    const std::string t = "@" + task.name;
    auto flatten = std::make_shared<LayerSpec>();
    flatten->name = "gate-input" + t;
    flatten->type = LayerType::Flatten;
    flatten->inputs = {gate_source};
    auto gate = std::make_shared<LayerSpec>();
    gate->name = "gate" + t;
    gate->type = LayerType::Dense;
    gate->units = opt_.experts;
    gate->inputs = {flatten->name};
    auto softmax = std::make_shared<LayerSpec>();
    softmax->name = "gate-softmax" + t;
    softmax->type = LayerType::Softmax;
    softmax->inputs = {gate->name};
    auto mixture = std::make_shared<LayerSpec>();
    mixture->name = "mixture" + t;
    mixture->type = LayerType::Mixture;
    mixture->inputs = {"experts", softmax->name};
    for (auto* s : {&flatten, &gate, &softmax, &mixture}) add(*s, "layer " + fan_out_);
  }
}

ModelConfig SharingRewrite::run() {
  validate_sharing(opt_);
  out_ = config_;
  out_.sharing = SharingOptions{};
  if (config_.sharing.is_default()) return out_;
  if (config_.tasks.size() < 2) refuse("needs at least two tasks");
  find_trunk();
  const int64_t k = shared_count();
  for (size_t i = size_t(k); i < trunk_.size(); ++i) copied_.insert(trunk_[i]);
  if (copied_.empty()) return out_;  // hard sharing of the whole trunk: the config as written
  if (opt_.mode == "mmoe" && k == int64_t(trunk_.size()))
    refuse("branch_after leaves no trunk layer to make the experts of");
  if (opt_.mode == "cross_stitch") {
    for (const auto& name : opt_.cross_stitch_after) {
      if (!copied_.count(name))
        refuse("cross_stitch_after names '" + name + "', which is not an unshared trunk layer (" +
               "unshared: " + join_names({trunk_.begin() + k, trunk_.end()}) + ")");
      stitched_.insert(name);
    }
    if (opt_.cross_stitch_after.empty())
      for (const auto& name : copied_)
        if (ends_a_block(*by_name_.at(name))) stitched_.insert(name);
    if (stitched_.empty())
      refuse("no unshared pooling or dense trunk layer to stitch after (name some with "
             "cross_stitch_after)");
  }
  out_.layers.clear();
  out_.source_positions.clear();
  for (const auto& [key, where] : config_.source_positions)
    if (!key.starts_with("layer ")) out_.source_positions[key] = where;
  const auto names = units();
  for (const auto& spec : config_.layers) {
    if (!copied_.count(spec->name)) {
      auto copy = std::make_shared<LayerSpec>(*spec);
      for (auto& in : copy->inputs) in = head_input(in, spec->name);
      add(copy, "layer " + spec->name);
      continue;
    }
    for (size_t u = 0; u < names.size(); ++u) {
      auto copy = std::make_shared<LayerSpec>(*spec);
      copy->name = spec->name + "@" + names[u];
      for (auto& in : copy->inputs) in = reader_name(in, u);
      if (!copy->shares.empty() && copied_.count(copy->shares))
        copy->shares = copy->shares + "@" + names[u];
      add(copy, "layer " + spec->name);
    }
    if (stitched_.count(spec->name))
      for (size_t u = 0; u < names.size(); ++u) {
        auto stitch = std::make_shared<LayerSpec>();
        stitch->name = "stitch-" + spec->name + "@" + names[u];
        stitch->type = LayerType::CrossStitch;
        stitch->self_weight = opt_.cross_stitch_self_weight;
        stitch->inputs.push_back(spec->name + "@" + names[u]);  // its own task's first
        for (size_t v = 0; v < names.size(); ++v)
          if (v != u) stitch->inputs.push_back(spec->name + "@" + names[v]);
        add(stitch, "layer " + spec->name);
      }
    if (opt_.mode == "mmoe" && spec->name == fan_out_) add_mmoe_tail();
  }
  for (auto& [output, layer] : out_.outputs) {
    if (!copied_.count(layer)) continue;
    const std::string own = output;
    const auto task = std::find_if(config_.tasks.begin(), config_.tasks.end(),
                                   [&](const Task& t) { return t.output_name() == own; });
    if (task == config_.tasks.end())
      refuse("output '" + output + "' reads the unshared trunk layer '" + layer +
             "' and no task uses it");
    layer = task_input(layer, size_t(task - config_.tasks.begin()));
  }
  // The copies' fan-out is found by the network (the last shared value, or a cut of several).
  out_.fan_out.clear();
  return out_;
}

std::vector<std::vector<std::string>> SharingRewrite::soft_groups() {
  std::vector<std::vector<std::string>> groups;
  if (opt_.mode != "soft") return groups;
  run();
  for (const auto& name : trunk_) {
    if (!copied_.count(name) || !has_own_parameters(*by_name_.at(name))) continue;
    std::vector<std::string> group;
    for (const auto& unit : units()) group.push_back(name + "@" + unit);
    groups.push_back(group);
  }
  return groups;
}

}  // namespace

const std::vector<std::string>& sharing_modes() {
  static const std::vector<std::string> modes = {"hard", "separate", "soft", "cross_stitch",
                                                 "mmoe"};
  return modes;
}

void validate_sharing(const SharingOptions& s) {
  const auto& modes = sharing_modes();
  if (std::find(modes.begin(), modes.end(), s.mode) == modes.end())
    fail("unknown sharing mode '", s.mode, "' (known: ", join_names(modes), ")");
  if (!std::isfinite(s.soft_strength) || s.soft_strength < 0)
    fail("soft_strength must be finite and non-negative, got ", s.soft_strength);
  if (!(s.cross_stitch_self_weight > 0 && s.cross_stitch_self_weight <= 1))
    fail("cross_stitch_self_weight must be in (0, 1], got ", s.cross_stitch_self_weight);
  if (s.experts < 2 || s.experts > kMaxExperts)
    fail("experts must be 2 to ", kMaxExperts, ", got ", s.experts);
  if (s.mode != "cross_stitch" && !s.cross_stitch_after.empty())
    fail("cross_stitch_after applies to mode cross_stitch, not ", s.mode);
}

ModelConfig apply_sharing(const ModelConfig& config) { return SharingRewrite(config).run(); }

SoftSharing soft_sharing_of(const ModelConfig& config) {
  SoftSharing soft;
  soft.groups = SharingRewrite(config).soft_groups();
  if (!soft.groups.empty()) soft.strength = config.sharing.soft_strength;
  return soft;
}

}  // namespace polytask::models
