#include "engine/checkpoint.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "engine/checkpoint_layout.h"
#include "engine/safetensors.h"
#include "kernels/error.h"

#ifndef POLYTASK_VERSION
#define POLYTASK_VERSION "0.1.0"  // keep in step with project(VERSION) in CMakeLists.txt
#endif

namespace polytask {

namespace {

constexpr const char* kFormat = "polytask-checkpoint";
constexpr const char* kFormatVersion = "1";
// Metadata keys the checkpoint itself writes; TrainingState::metadata may not use them.
const std::set<std::string> kReservedKeys = {"format",        "format_version",  "polytask_version",
                                             "checkpoint_id", "parameter_count", "state_count",
                                             "epoch",         "network_step",    "network_seed",
                                             "optimizer",     "learning_rate",   "balancer"};
// The balancer's state tensors share the state file with the optimiser's, under this prefix.
constexpr const char* kBalancerPrefix = "balancer.";

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

std::string in_dir(const std::string& dir, const char* file) {
  return (std::filesystem::path(dir) / file).string();
}

// Every parameter of `net` as a CPU tensor (no copy for a CPU network), in checkpoint order.
NamedTensors host_parameters(const Network& net) {
  NamedTensors out;
  for (const Parameter* p : net.parameters().all)
    out.emplace_back(p->name, p->value.to(Device::CPU));
  return out;
}

// FNV-1a over names, dtypes, shapes and bytes: the checkpoint_id both files carry.
struct Fnv1a {
  uint64_t h = 14695981039346656037ull;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
};
std::string digest(const NamedTensors& tensors) {
  Fnv1a f;
  for (const auto& [name, t] : tensors) {
    f.add(name.c_str(), name.size() + 1);
    f.add(dtype_name(t.dtype()), std::strlen(dtype_name(t.dtype())));
    for (int64_t d : t.shape()) f.add(&d, sizeof d);
    f.add(t.raw(), t.bytes());
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(f.h));
  return text;
}

// A CPU copy of `t` (F32 or F64) in `dtype`.
Tensor convert(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = Tensor::empty(t.shape(), dtype);
  const int64_t n = t.numel();
  if (dtype == DType::F32) {
    const double* src = t.data<double>();
    float* dst = out.data<float>();
    for (int64_t i = 0; i < n; ++i) dst[i] = float(src[i]);
  } else {
    const float* src = t.data<float>();
    double* dst = out.data<double>();
    for (int64_t i = 0; i < n; ++i) dst[i] = double(src[i]);
  }
  return out;
}

void check_format(const SafetensorsFile& f) {
  const auto it = f.metadata().find("format");
  if (it == f.metadata().end() || it->second != kFormat)
    fail(f.path(), ": not a polytask checkpoint (its metadata lacks format=", kFormat, ")");
  const std::string& version = f.metadata_value("format_version");
  if (version != kFormatVersion)
    fail(f.path(), ": checkpoint format version ", version,
         " is not supported (this polytask reads ", kFormatVersion, ")");
}

template <class T>
T metadata_integer(const SafetensorsFile& f, const std::string& key) {
  const std::string& text = f.metadata_value(key);
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    fail(f.path(), ": metadata '", key, "' is \"", text, "\", not an integer");
  return value;
}

double metadata_double(const SafetensorsFile& f, const std::string& key) {
  const std::string& text = f.metadata_value(key);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size())
    fail(f.path(), ": metadata '", key, "' is \"", text, "\", not a number");
  return value;
}

std::string shape_of(const SafetensorsEntry& e) {
  std::string s = "(";
  for (size_t i = 0; i < e.shape.size(); ++i) s += cat(i ? ", " : "", e.shape[i]);
  return s + (e.shape.size() == 1 ? ",)" : ")");
}

bool same_shape(const SafetensorsEntry& e, const Shape& shape) {
  if (e.shape.size() != size_t(shape.rank())) return false;
  for (int i = 0; i < shape.rank(); ++i)
    if (e.shape[size_t(i)] != shape[i]) return false;
  return true;
}

// Checks that `f` holds exactly the parameters of `net` and returns them as CPU tensors of the
// network's dtype, in the order of net.parameters().all. Touches nothing.
std::vector<Tensor> checked_parameters(const SafetensorsFile& f, const Network& net) {
  const std::string prefix = cat("checkpoint ", f.path(), " is from another model: ");
  std::vector<std::string> problems;
  std::set<std::string> names;
  for (const Parameter* p : net.parameters().all) {
    names.insert(p->name);
    const SafetensorsEntry* e = f.find(p->name);
    if (!e)
      problems.push_back("missing parameter " + p->name);
    else if (!same_shape(*e, p->shape))
      problems.push_back(cat("parameter ", p->name, " has shape ", shape_of(*e),
                             " in the checkpoint but ", p->shape, " in the model"));
    else if (e->dtype != "F32" && e->dtype != "F64")
      problems.push_back(
          cat("parameter ", p->name, " has dtype ", e->dtype, " (F32 or F64 expected)"));
  }
  for (const SafetensorsEntry& e : f.entries())
    if (!names.count(e.name)) problems.push_back("unexpected tensor " + e.name);
  if (!problems.empty())
    fail(prefix, problems.front(),
         problems.size() > 1 ? cat(" (and ", problems.size() - 1, " more differences)") : "");

  std::vector<Tensor> out;
  const DType dtype = net.options().dtype;
  for (const Parameter* p : net.parameters().all) out.push_back(convert(f.tensor(p->name), dtype));
  return out;
}

void copy_parameters(const std::vector<Tensor>& values, Network& net) {
  const auto& all = net.parameters().all;
  for (size_t i = 0; i < all.size(); ++i)
    all[i]->value.copy_from(values[i].view(all[i]->value.shape()));
}

std::string format_double(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", x);
  return text;
}

}  // namespace

void save_checkpoint(const std::string& dir, const Network& net, Optimizer* optimizer,
                     const TrainingState& st) {
  for (const auto& [key, value] : st.metadata)
    if (kReservedKeys.count(key))
      fail("save_checkpoint ", dir, ": metadata key '", key, "' is reserved");
  if (st.epoch < 0) fail("save_checkpoint ", dir, ": negative epoch ", st.epoch);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("cannot create checkpoint directory ", dir, ": ", ec.message());

  const NamedTensors params = host_parameters(net);
  const std::string id = digest(params);
  const ParameterSet& ps = net.parameters();
  const SafetensorsMetadata model_metadata = {
      {"format", kFormat},
      {"format_version", kFormatVersion},
      {"polytask_version", POLYTASK_VERSION},
      {"parameter_count", std::to_string(ps.trainable_count)},
      {"state_count", std::to_string(ps.state_count)},
      {"network_step", std::to_string(net.step())},
      {"checkpoint_id", id}};
  CheckpointCommit commit(dir);
  write_safetensors(commit.file_path(kCheckpointModelFile), params, model_metadata);
  checkpoint_fault_point("model-written");

  NamedTensors opt_state;
  SafetensorsMetadata state_metadata = st.metadata;
  state_metadata["format"] = kFormat;
  state_metadata["format_version"] = kFormatVersion;
  state_metadata["checkpoint_id"] = id;
  state_metadata["epoch"] = std::to_string(st.epoch);
  state_metadata["network_step"] = std::to_string(net.step());
  state_metadata["network_seed"] = std::to_string(net.options().seed);
  state_metadata["optimizer"] = optimizer ? optimizer->name() : "none";
  if (optimizer) {
    state_metadata["learning_rate"] = format_double(optimizer->learning_rate());
    for (auto& [name, t] : optimizer->state())
      if (t.defined()) opt_state.emplace_back(name, t);  // undefined: not allocated yet
  }
  net.fan_out().sync_balancer_state();  // a GPU run's device steps, into the host's copy
  const Balancer& balancer = net.fan_out().balancer();
  state_metadata["balancer"] = balancer.name();
  for (auto& [name, t] : balancer.state()) {
    if (name.rfind(kBalancerPrefix, 0) != 0)
      fail("save_checkpoint ", dir, ": balancer state '", name, "' lacks the prefix ",
           kBalancerPrefix);
    opt_state.emplace_back(name, t);
  }
  write_safetensors(commit.file_path(kCheckpointStateFile), opt_state, state_metadata);
  checkpoint_fault_point("state-written");
  commit.commit({kCheckpointModelFile, kCheckpointStateFile});
}

bool has_checkpoint(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::exists(in_dir(checkpoint_files_dir(dir), kCheckpointModelFile), ec);
}

void load_parameters(const std::string& dir_or_file, Network& net) {
  std::error_code ec;
  const std::string path = std::filesystem::is_directory(dir_or_file, ec)
                               ? in_dir(checkpoint_files_dir(dir_or_file), kCheckpointModelFile)
                               : dir_or_file;
  const SafetensorsFile f = SafetensorsFile::read(path);
  copy_parameters(checked_parameters(f, net), net);
}

namespace {

SafetensorsFile read_state_file(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    fail("checkpoint directory ", dir, " does not exist");
  SafetensorsFile f = SafetensorsFile::read(in_dir(checkpoint_files_dir(dir), kCheckpointStateFile));
  check_format(f);
  return f;
}

TrainingState parse_training_state(const SafetensorsFile& f) {
  TrainingState st;
  // Checkpoints from before balancers existed trained with static weights.
  const auto balancer = f.metadata().find("balancer");
  st.balancer = balancer == f.metadata().end() ? "static" : balancer->second;
  st.epoch = metadata_integer<int64_t>(f, "epoch");
  st.network_step = metadata_integer<uint64_t>(f, "network_step");
  for (const auto& [key, value] : f.metadata())
    if (!kReservedKeys.count(key)) st.metadata.emplace(key, value);
  return st;
}

}  // namespace

TrainingState read_training_state(const std::string& dir) {
  return parse_training_state(read_state_file(dir));
}

TrainingState load_training_state(const std::string& dir, Network& net, Optimizer& optimizer) {
  const SafetensorsFile state = read_state_file(dir);
  const SafetensorsFile model =
      SafetensorsFile::read(in_dir(checkpoint_files_dir(dir), kCheckpointModelFile));
  check_format(model);
  const std::string& model_id = model.metadata_value("checkpoint_id");
  const std::string& state_id = state.metadata_value("checkpoint_id");
  if (model_id != state_id ||
      model.metadata_value("network_step") != state.metadata_value("network_step"))
    fail("checkpoint ", dir, " is inconsistent: ", kCheckpointModelFile, " (checkpoint_id ",
         model_id, ", step ", model.metadata_value("network_step"), ") and ", kCheckpointStateFile,
         " (checkpoint_id ", state_id, ", step ", state.metadata_value("network_step"),
         ") were not written together, probably because a save was interrupted; save it again "
         "or resume from another checkpoint");
  TrainingState st = parse_training_state(state);

  const std::string& saved_optimizer = state.metadata_value("optimizer");
  if (saved_optimizer == "none")
    fail("checkpoint ", dir,
         " holds no optimizer state (saved without an optimizer); load it with "
         "load_parameters instead");
  if (saved_optimizer != optimizer.name())
    fail("checkpoint ", dir, " was trained with optimizer ", saved_optimizer,
         "; cannot resume it with ", optimizer.name());
  const auto seed = metadata_integer<uint64_t>(state, "network_seed");
  if (seed != net.options().seed)
    fail("checkpoint ", dir, " was trained by a network with seed ", seed,
         " but this one has seed ", net.options().seed,
         " (dropout masks would differ); build the network with seed ", seed);
  const double lr = metadata_double(state, "learning_rate");
  if (!(lr > 0) || !std::isfinite(lr))
    fail(state.path(), ": metadata 'learning_rate' is ", lr, ", not a positive number");

  Balancer& balancer = net.fan_out().balancer();
  if (st.balancer != balancer.name())
    fail("checkpoint ", dir, " was trained with balancer ", st.balancer, "; cannot resume it with ",
         balancer.name(), " (a run keeps its balancer: start a new run to use another)");

  const std::vector<Tensor> values = checked_parameters(model, net);
  NamedTensors opt_state, balancer_state;
  for (const SafetensorsEntry& e : state.entries())
    (e.name.rfind(kBalancerPrefix, 0) == 0 ? balancer_state : opt_state)
        .emplace_back(e.name, state.tensor(e.name));
  // Both restores change nothing when they throw; the balancer's is the smaller and goes
  // first, on a copy, so a failing optimiser restore leaves it untouched too.
  net.fan_out().sync_balancer_state();
  const NamedTensors balancer_before = balancer.state();
  try {
    balancer.load_state(balancer_state);
  } catch (const Error& e) {
    fail("checkpoint ", state.path(), ": ", e.what());
  }
  try {
    optimizer.load_state(opt_state, net.parameters());  // changes nothing when it throws
  } catch (const Error& e) {
    balancer.load_state(balancer_before);
    fail("checkpoint ", state.path(), ": ", e.what());
  }
  copy_parameters(values, net);
  optimizer.set_learning_rate(lr);
  net.set_step(st.network_step);
  return st;
}

}  // namespace polytask
