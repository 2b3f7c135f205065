// What train, eval and predict share: resolving a config, loading the data with its task
// targets, building the network, reading the run directory.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "cli/args.h"
#include "datasets/data.h"
#include "engine/network.h"
#include "kernels/error.h"
#include "models/config.h"

namespace polytask::cli {

// Upper bounds of sizes a user chooses, far above any real run and far below where a buffer
// size (batch × sample) could overflow: a larger value is refused naming it.
inline constexpr int64_t kMaxBatchSize = int64_t(1) << 20;
inline constexpr int64_t kMaxEpochs = 1'000'000;  // FitOptions counts epochs in an int

struct Setup {
  models::ModelConfig config;
  std::string data_source;
  datasets::DataSplits data;  // task targets attached to both splits
  std::unique_ptr<Model> model;
  std::unique_ptr<Network> network;
  // Why `--device auto` stayed on the CPU with a GPU present (empty otherwise).
  std::string device_note;
};

// --device: cpu, cuda, or auto (the GPU when one is present and usable and every layer of the
// model has CUDA kernels, else the CPU). When auto passes over a GPU it cannot use (too old,
// not compiled for), choose_device says why in one line on stderr.
struct DeviceChoice {
  Device device = Device::CPU;
  bool automatic = false;
};
DeviceChoice choose_device(const std::string& text);

// --threads N: the CPU threads of every kernel; 0 (the default) leaves OpenMP's choice, which is
// OMP_NUM_THREADS when set, else the cores this process may run on.
void declare_threads_option(Args& a);
void apply_threads_option(const Args& a);

// What the CPU kernels run on, for the run's header: "cpu kernels: avx512 (AVX-512F, FMA),
// 2 threads". A forced variant (POLYTASK_CPU_ISA) says so.
std::string cpu_kernels_line();

// Loads `data_source` (empty: the config's default_data), derives every task's targets, builds
// the model for the data's input shapes and compiles it.
// `options.device` is replaced by the resolved choice.
Setup prepare(models::ModelConfig config, const std::string& data_source,
              const datasets::LoadOptions& load, const NetworkOptions& options,
              DeviceChoice device);

// Per task of the network, the names of its class indices from the data (Fashion-MNIST's
// garments, parity's even/odd...; empty where the index stands for itself).
std::vector<std::vector<std::string>> task_value_names(const Setup& setup);

// Files of a run directory.
std::string run_file(const std::string& dir, const std::string& name);
// Writes `text` to `path` atomically (temporary file, flush, rename).
void write_text_file(const std::string& path, const std::string& text);
std::string read_text_file(const std::string& path);

// "--loss-weight TASK=W" overrides.
void apply_loss_weights(const std::vector<std::string>& specs, std::vector<Task>& tasks);

// Key/value settings of a run (batch size, seed, data...), stored beside the checkpoint so that
// eval, predict and --resume use what training used.
using Settings = std::map<std::string, std::string>;
std::string format_settings(const Settings& s);  // "key = value" lines
Settings parse_settings(const std::string& text, const std::string& origin);
// A setting's value; a missing or malformed one (a damaged run.conf) is an Error naming the key.
const std::string& setting(const Settings& s, const std::string& key);
int64_t setting_int(const Settings& s, const std::string& key);
double setting_number(const Settings& s, const std::string& key);

// Data-loading and network options of a run from its settings (seed, limit, batch size).
void run_options(const Settings& s, datasets::LoadOptions& load,
                 NetworkOptions& options);

}  // namespace polytask::cli
