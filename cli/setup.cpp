#include "cli/setup.h"

#include <omp.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "datasets/labels.h"
#include "engine/safetensors.h"
#include "kernels/cpu/isa.h"
#include "kernels/precision.h"

namespace polytask::cli {

Setup prepare(models::ModelConfig config, const std::string& data_source,
              const datasets::LoadOptions& load, const NetworkOptions& options,
              DeviceChoice device) {
  Setup s;
  s.config = std::move(config);
  s.data_source = data_source.empty() ? s.config.default_data : data_source;
  if (s.data_source.empty())
    throw UsageError(cat(s.config.origin, " names no default_data; pass --data"));
  s.data = datasets::load_data(s.data_source, load);
  // Both splits at once, which also refuses a rule that does not fit the data's classes.
  datasets::attach_task_targets(s.data, s.config.tasks, load.seed);
  std::map<std::string, Shape> shapes;
  for (const auto& in : s.data.train.inputs) shapes[in.name] = in.tensor.shape().sample();
  s.model = std::make_unique<Model>(models::build_model(s.config, shapes));
  NetworkOptions net = options;
  net.device = device.device;
  if (device.automatic && device.device == Device::CUDA)
    for (const auto& layer : s.model->graph().layers)
      if (!layer->has_cuda_kernels()) {
        net.device = Device::CPU;
        s.device_note = cat("layer ", layer->name(), " (", layer->kind(),
                            ") has no CUDA kernel yet, so --device auto uses the CPU");
        break;
      }
  if (net.fan_out.empty()) net.fan_out = models::fan_out_value(s.config);
  net.soft_sharing = models::soft_sharing_of(s.config);
  s.network = std::make_unique<Network>(*s.model, s.config.tasks, net);
  return s;
}

std::string run_file(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::vector<std::vector<std::string>> task_value_names(const Setup& setup) {
  std::vector<std::vector<std::string>> names;
  for (const auto& task : setup.network->tasks())
    names.push_back(datasets::task_value_names(task, setup.data.class_names));
  return names;
}

void write_text_file(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void apply_loss_weights(const std::vector<std::string>& specs, std::vector<Task>& tasks) {
  for (const auto& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos)
      throw UsageError(cat("--loss-weight expects TASK=WEIGHT, got '", spec, "'"));
    const std::string name = spec.substr(0, eq), value = spec.substr(eq + 1);
    Task* task = nullptr;
    for (auto& t : tasks)
      if (t.name == name) task = &t;
    if (!task) {
      std::string known;
      for (const auto& t : tasks) known += (known.empty() ? "" : ", ") + t.name;
      throw UsageError(cat("--loss-weight: no task named '", name, "' (tasks: ", known, ")"));
    }
    const auto w = to_number(value);
    if (!w || !(*w >= 0) || *w > 1e30)
      throw UsageError(cat("--loss-weight ", name, ": expected a non-negative number, got '", value, "'"));
    task->weight = *w;
  }
}

std::string format_settings(const Settings& s) {
  std::string out = "# polytask run settings (read by eval, predict and train --resume)\n";
  for (const auto& [k, v] : s) out += k + " = " + v + "\n";
  return out;
}

Settings parse_settings(const std::string& text, const std::string& origin) {
  Settings s;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find(" = ");
    if (eq == std::string::npos) fail(origin, ":", number, ": expected 'key = value'");
    s[line.substr(0, eq)] = line.substr(eq + 3);
  }
  return s;
}

const std::string& setting(const Settings& s, const std::string& key) {
  const auto it = s.find(key);
  if (it == s.end()) fail("the run settings (run.conf) have no '", key, "'");
  return it->second;
}

int64_t setting_int(const Settings& s, const std::string& key) {
  const auto v = to_int(setting(s, key));
  if (!v) fail("run settings (run.conf): '", key, "' is not an integer: '", setting(s, key), "'");
  return *v;
}

double setting_number(const Settings& s, const std::string& key) {
  const auto v = to_number(setting(s, key));
  if (!v) fail("run settings (run.conf): '", key, "' is not a number: '", setting(s, key), "'");
  return *v;
}

DeviceChoice choose_device(const std::string& text) {
  const DeviceSelection selection = select_device(text, cuda_status());
  if (!selection.note.empty()) std::cerr << "polytask: note: " << selection.note << "\n";
  return {selection.device, text == "auto"};
}

void declare_threads_option(Args& a) {
  a.option("threads", "N", "0",
           "CPU threads for the kernels (0: OMP_NUM_THREADS if set, else all available cores)");
}

void apply_threads_option(const Args& a) {
  const int64_t threads = a.get_int_in("threads", 0, 4096);
  if (threads > 0) omp_set_num_threads(int(threads));
}

std::string cpu_kernels_line() {
  return cat("cpu kernels: ", kernels::cpu::isa_description(), ", ", omp_get_max_threads(),
             omp_get_max_threads() == 1 ? " thread" : " threads");
}

void run_options(const Settings& s, datasets::LoadOptions& load,
                 NetworkOptions& options) {
  load.seed = uint64_t(setting_int(s, "seed"));
  load.limit = setting_int(s, "limit");
  options.max_batch = setting_int(s, "batch-size");
  if (options.max_batch <= 0 || options.max_batch > kMaxBatchSize)
    throw UsageError(cat("--batch-size must be between 1 and ", kMaxBatchSize, ", got ",
                         options.max_batch));
  options.seed = load.seed;
  // Runs saved before the option existed computed in fp32.
  const auto precision = s.find("precision");
  options.precision = kernels::parse_precision(precision == s.end() ? "fp32" : precision->second);
}

}  // namespace polytask::cli
