// polytask train: preset or config + data -> a trained model in an output directory:
//   config.toml        the resolved model config (with the loss weights and the [balancer] used)
//   run.conf           the run's settings (data, batch size, seed...) for eval/predict/--resume
//   model.safetensors  parameters (openable with Python's safetensors)
//   training_state.safetensors  optimiser moments, step counters, completed epochs
//   metrics.jsonl      one JSON object per epoch; metrics.csv the same as Keras' CSVLogger
//   best/              the best epoch's parameters (--save-best, --restore-best-weights)
//   tb/                TensorBoard event files (train/, validation/)
//   curves.png, .svg   the training curves, drawn at the end
//   test_metrics.json  per-head test metrics at the end
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/metrics_json.h"
#include "cli/plot.h"
#include "cli/setup.h"
#include "cli/train_callbacks.h"
#include "comm/launch.h"
#include "engine/checkpoint.h"
#include "engine/checkpoint_layout.h"
#include "engine/device.h"
#include "engine/optimizer.h"
#include "engine/safetensors.h"
#include "engine/trainer.h"
#include "kernels/precision.h"

namespace polytask::cli {

namespace {

Args train_args() {
  Args a("train",
         "Trains a multi-task model and prints, per epoch, the total loss and each head's loss "
         "and metric for training and validation data, then per-head test metrics. The "
         "checkpoint, per-epoch metrics and resolved config go to the output directory.");
  a.option("preset", "NAME", "mnist-digit-parity", "model preset (see 'polytask models')");
  a.option("config", "FILE", "", "a model config file (TOML) instead of a preset");
  a.option("data", "SOURCE", "",
           "data directory (IDX or CIFAR-10 files) or synthetic:digits|rgb|two-input; "
           "default: the preset's default_data");
  a.option("epochs", "N", "5", "train until this epoch (with --resume: the new last epoch)");
  a.option("batch-size", "N", "128",
           "examples per step (under mpirun: over all ranks, each taking its share)");
  a.option("lr", "RATE", "1e-3", "learning rate");
  a.option("optimizer", "NAME", "adam", "adam (eps 1e-7, as Keras) or sgd");
  a.option("momentum", "M", "0.9", "SGD momentum");
  a.repeated("loss-weight", "TASK=W", "set a task's loss weight");
  a.option("val-split", "FRACTION", "0.1",
           "validation fraction taken from the end of the training set");
  a.option("seed", "N", "0", "seed for initialisation, shuffling, dropout and synthetic data");
  a.option("precision", "fp32|tf32|bf16", "fp32",
           "GPU arithmetic of GEMMs and convolutions: fp32, or tensor cores with tf32/bf16 "
           "operands (fp32 weights, activations and sums either way)");
  a.option("device", "cpu|cuda|auto", "auto",
           "where to train (auto: the GPU when present; POLYTASK_CUDA_SYNC=1 synchronises after "
           "every kernel, without CUDA graphs, to name a faulting one)");
  a.option("out", "DIR", "runs/<preset>-<date>-<time>",
           "output directory (must not hold a model yet)");
  a.option("resume", "DIR", "", "continue a run from its last completed epoch");
  a.option("limit", "N", "0", "use at most N examples of each split (0: all)");
  std::string strategies;
  for (const auto& name : balancer_names()) strategies += (strategies.empty() ? "" : ", ") + name;
  a.option("balancer", "NAME", "",
           "gradient balancing at the fan-out: " + strategies +
               " (default: the config's [balancer], else static; see docs/balancers.md)");
  a.option("balancer-lr", "RATE", "--lr",
           "uncertainty, gradnorm, imtl: learning rate of their weights; famo: of its logits, "
           "whose default is 0.025, not --lr");
  a.option("gradnorm-alpha", "A", "1.5", "gradnorm: the restoring-force exponent");
  a.option("dwa-temperature", "T", "2", "dwa: the softmax temperature");
  a.option("dynamic-step", "S", "0.1",
           "dynamic: the weight moved per epoch toward the lagging task");
  a.repeated("schedule", "TASK=W1,W2,..",
             "dynamic: the task's weight in epochs 1, 2, ... (the last one after)");
  a.option("mgda-normalization", "N", "none", "mgda: gradient normaliser none, l2, loss or loss+");
  a.option("cagrad-c", "C", "0.4", "cagrad: the radius of the ball around the mean gradient");
  a.option("famo-decay", "G", "0.001", "famo: the weight decay of its logits");
  a.option("imtl-mode", "MODE", "hybrid",
           "imtl: hybrid (loss scales and gradient balance), gradient (IMTL-G) or loss (IMTL-L)");
  a.option("aligned-scale", "S", "min", "aligned-mtl: the scale of the aligned gradients, min, "
           "median or rmse of the singular values");
  a.option("sharing", "MODE", "hard",
           "how the tasks share the trunk: hard, separate (a trunk per task), soft (separate, "
           "with an L2 pull between the copies), cross_stitch or mmoe (default: the config's "
           "[sharing], else hard; see models/README.md)");
  a.option("branch-after", "K|LAYER", "",
           "share the trunk's first K layers (or up to LAYER) and copy the rest per task "
           "(default: hard shares all, the other modes none)");
  a.option("soft-strength", "S", "0.001", "soft: the strength of the L2 pull between copies");
  a.option("cross-stitch-after", "L1,L2,..", "",
           "cross_stitch: the unshared trunk layers to mix after (default: every unshared "
           "pooling and dense trunk layer)");
  a.option("experts", "E", "4", "mmoe: the number of experts (2 to 8)");
  declare_callback_options(a);
  declare_threads_option(a);
  a.flag("summary", "print the model and its trunk/head plan before training");
  a.flag("sync-batchnorm",
         "data-parallel runs (mpirun -np N polytask train ...): BatchNorm normalises with the "
         "statistics of the whole global batch, summed over the ranks, instead of each rank's "
         "shard (see docs/data_parallel.md)");
  a.option("collective-timeout", "SECONDS", "600",
           "data-parallel runs: how long a rank waits for the others at a collective before the "
           "job stops with an error");
  a.flag("no-cuda-graphs",
         "on the GPU, launch every kernel of a step separately instead of replaying the step as "
         "one CUDA graph (same results; for profiling and debugging)");
  return a;
}

std::unique_ptr<Optimizer> make_optimizer(const Settings& s) {
  const double lr = setting_number(s, "lr");
  if (setting(s, "optimizer") == "adam") {
    kernels::AdamParams p;
    p.lr = float(lr);
    return std::make_unique<Adam>(p);
  }
  if (setting(s, "optimizer") == "sgd") {
    kernels::SgdParams p;
    p.lr = float(lr);
    p.momentum = float(setting_number(s, "momentum"));
    return std::make_unique<Sgd>(p);
  }
  throw UsageError(cat("--optimizer: unknown optimiser '", setting(s, "optimizer"), "' (adam or sgd)"));
}

// The settings of a new run, validated.
Settings new_settings(const Args& a) {
  Settings s;
  for (const char* key :
       {"data", "batch-size", "lr", "optimizer", "momentum", "val-split", "seed", "limit",
        "precision"})
    s[key] = a.get(key);
  s["sync-batchnorm"] = a.is_set("sync-batchnorm") ? "yes" : "no";
  a.get_int_in("batch-size", 1, kMaxBatchSize);
  const double lr = a.get_double("lr");
  if (!(lr > 0) || !std::isfinite(float(lr)))
    throw UsageError(cat("--lr must be positive and finite, got ", a.get("lr")));
  const double split = a.get_double("val-split");
  if (!(split >= 0 && split < 1))
    throw UsageError(cat("--val-split must be in [0, 1), got ", a.get("val-split")));
  if (a.get_int("seed") < 0) throw UsageError("--seed must be non-negative");
  if (a.get_int("limit") < 0) throw UsageError("--limit must be non-negative");
  a.get_double("momentum");
  try {
    kernels::parse_precision(a.get("precision"));
  } catch (const Error& e) {
    throw UsageError(cat("--precision: ", e.what()));
  }
  try {
    make_optimizer(s);  // the optimiser's own checks of --lr and --momentum, as usage errors
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(cat("--optimizer ", setting(s, "optimizer"), ": ", e.what()));
  }
  callback_settings(a, s);
  return s;
}

// The --sharing family: they rewrite the model, so a resumed run cannot change them.
constexpr const char* kSharingOptions[] = {"sharing", "branch-after", "soft-strength",
                                           "cross-stitch-after", "experts"};

// The config's [sharing], overridden by --sharing and its options.
models::SharingOptions sharing_options(const Args& a, const models::ModelConfig& config) {
  models::SharingOptions s = config.sharing;
  if (a.is_set("sharing") && a.get("sharing") != s.mode) {
    s = models::SharingOptions{};
    s.mode = a.get("sharing");
  }
  if (a.is_set("branch-after")) s.branch_after = a.get("branch-after");
  if (a.is_set("soft-strength")) s.soft_strength = a.get_double("soft-strength");
  if (a.is_set("experts")) s.experts = a.get_int("experts");
  if (a.is_set("cross-stitch-after")) {
    s.cross_stitch_after.clear();
    std::stringstream list(a.get("cross-stitch-after"));
    for (std::string name; std::getline(list, name, ',');)
      if (!name.empty()) s.cross_stitch_after.push_back(name);
  }
  try {
    models::validate_sharing(s);
    models::ModelConfig rewritten = config;
    rewritten.sharing = s;
    models::apply_sharing(rewritten);  // the trunk, branch point and layer names, as one line
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  return s;
}

// The options of one balancer each; the command line may not set another strategy's.
struct BalancerOption {
  const char* option;
  std::vector<std::string> strategies;
};
const std::vector<BalancerOption>& balancer_option_owners() {
  static const std::vector<BalancerOption> owners = {
      {"balancer-lr", {"uncertainty", "gradnorm", "imtl", "famo"}},
      {"gradnorm-alpha", {"gradnorm"}},
      {"dwa-temperature", {"dwa"}},
      {"dynamic-step", {"dynamic"}},
      {"schedule", {"dynamic"}},
      {"mgda-normalization", {"mgda"}},
      {"cagrad-c", {"cagrad"}},
      {"famo-decay", {"famo"}},
      {"imtl-mode", {"imtl"}},
      {"aligned-scale", {"aligned-mtl"}}};
  return owners;
}

double positive_number(const Args& a, const char* option) {
  const double v = a.get_double(option);
  if (!(v > 0) || !std::isfinite(v))
    throw UsageError(cat("--", option, " must be positive, got ", a.get(option)));
  return v;
}

// "TASK=1.0,0.8,0.5" -> {TASK: [1.0, 0.8, 0.5]}, tasks checked against the config.
void parse_schedule(const std::string& spec, const models::ModelConfig& config,
                    BalancerOptions& b) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos)
    throw UsageError(cat("--schedule expects TASK=W1,W2,..., got '", spec, "'"));
  const std::string task = spec.substr(0, eq);
  std::string known;
  bool found = false;
  for (const auto& t : config.tasks) {
    known += (known.empty() ? "" : ", ") + t.name;
    found |= t.name == task;
  }
  if (!found) throw UsageError(cat("--schedule: no task named '", task, "' (tasks: ", known, ")"));
  std::vector<double> weights;
  std::stringstream in(spec.substr(eq + 1));
  for (std::string item; std::getline(in, item, ',');) {
    const auto w = to_number(item);
    if (!w || !(*w >= 0) || !std::isfinite(*w))
      throw UsageError(cat("--schedule ", task,
                           ": expected non-negative weights separated by commas, got '",
                           spec.substr(eq + 1), "'"));
    weights.push_back(*w);
  }
  if (weights.empty()) throw UsageError(cat("--schedule ", task, ": no weights given"));
  b.schedule[task] = weights;
}

// The config's [balancer], overridden by --balancer and its options.
BalancerOptions balancer_options(const Args& a, const models::ModelConfig& config) {
  BalancerOptions b = config.balancer;
  if (a.is_set("balancer") && a.get("balancer") != b.name) {
    b = BalancerOptions{};
    b.name = a.get("balancer");
  }
  const auto& known = balancer_names();
  if (std::find(known.begin(), known.end(), b.name) == known.end()) {
    std::string list;
    for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
    throw UsageError(cat("--balancer: unknown balancer '", b.name, "' (known: ", list, ")"));
  }
  for (const auto& [option, strategies] : balancer_option_owners()) {
    if (!a.is_set(option) ||
        std::find(strategies.begin(), strategies.end(), b.name) != strategies.end())
      continue;
    std::string applies;
    for (size_t i = 0; i < strategies.size(); ++i)
      applies += (i == 0 ? "" : i + 1 == strategies.size() ? " or " : ", ") + strategies[i];
    throw UsageError(
        cat("--", option, " applies to --balancer ", applies, "; this run uses ", b.name));
  }
  if (a.is_set("balancer-lr")) b.lr = positive_number(a, "balancer-lr");
  if (a.is_set("gradnorm-alpha")) {
    b.alpha = a.get_double("gradnorm-alpha");
    if (!(b.alpha >= 0 && b.alpha <= 100))
      throw UsageError(cat("--gradnorm-alpha must be in [0, 100], got ", a.get("gradnorm-alpha")));
  }
  if (a.is_set("dwa-temperature")) b.temperature = positive_number(a, "dwa-temperature");
  if (a.is_set("dynamic-step")) b.step = positive_number(a, "dynamic-step");
  if (a.is_set("mgda-normalization")) b.normalization = a.get("mgda-normalization");
  if (a.is_set("cagrad-c")) {
    b.c = a.get_double("cagrad-c");
    if (!(b.c >= 0 && b.c <= 100))
      throw UsageError(cat("--cagrad-c must be in [0, 100], got ", a.get("cagrad-c")));
  }
  if (a.is_set("famo-decay")) {
    b.decay = a.get_double("famo-decay");
    if (!(b.decay >= 0 && b.decay <= 1))
      throw UsageError(cat("--famo-decay must be in [0, 1], got ", a.get("famo-decay")));
  }
  if (a.is_set("imtl-mode")) b.imtl_mode = a.get("imtl-mode");
  if (a.is_set("aligned-scale")) b.scale = a.get("aligned-scale");
  if (a.is_set("schedule")) {
    b.schedule.clear();
    for (const auto& spec : a.all("schedule")) parse_schedule(spec, config, b);
  }
  try {
    make_balancer(b);  // the options' ranges, as one line
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  if (b.lr == 0 && b.name != "famo") {  // defaults to --lr (run_train), so check that too
    BalancerOptions defaulted = b;
    defaulted.lr = a.get_double("lr");
    try {
      make_balancer(defaulted);
    } catch (const Error& e) {
      throw UsageError(cat("--lr ", a.get("lr"), " (also the balancer's rate): ", e.what()));
    }
  }
  return b;
}

// Throws naming the directory when a file cannot be created in run directory `dir` or in its
// checkpoints/, where training will write.
void check_writable(const std::string& dir) {
  std::vector<std::string> dirs = {dir};
  if (std::filesystem::is_directory(run_file(dir, kCheckpointsDir)))
    dirs.push_back(run_file(dir, kCheckpointsDir));
  for (const std::string& d : dirs) {
    const AtomicFile probe(run_file(d, ".polytask-write-probe"));  // removed, never committed
  }
}

// runs/<name>-<date>-<time>, so that running the same command twice never collides.
std::string default_out_dir(const std::string& name) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  std::string dir = "runs/" + name + "-" + stamp;
  for (int i = 2; std::filesystem::exists(dir); ++i)
    dir = "runs/" + name + "-" + stamp + "-" + std::to_string(i);
  return dir;
}

}  // namespace

int run_train(const std::vector<std::string>& argv) {
  Args a = train_args();
  if (!a.parse(argv)) {
    std::cout << a.usage();
    return 0;
  }
  const int64_t epochs = a.get_int_in("epochs", 0, kMaxEpochs);
  const double timeout = a.get_double("collective-timeout");
  if (!(timeout > 0) || !std::isfinite(timeout))
    throw UsageError(
        cat("--collective-timeout must be positive, got ", a.get("collective-timeout")));
  // Data-parallel (started by mpirun or another MPI launcher): this rank's GPU is chosen before
  // anything touches one; `job` coordinates the run directory (rank 0 writes it, the others
  // only read) and, on the CPU, trains.
  comm::select_local_gpu();
  const std::unique_ptr<Communicator> job = comm::connect(Device::CPU, timeout);
  const bool root = job->is_root();
  std::ostringstream discarded;  // what ranks other than 0 would print
  std::ostream& say = root ? std::cout : discarded;
  apply_threads_option(a);
  const bool resume = a.is_set("resume");

  models::ModelConfig config;
  Settings settings;
  std::string out;
  if (resume) {
    out = a.get("resume");
    for (const char* fixed :
         {"preset", "config", "data", "batch-size", "lr", "optimizer", "momentum", "loss-weight",
          "val-split", "seed", "out", "limit", "sync-batchnorm"})
      if (a.is_set(fixed))
        throw UsageError(
            cat("--", fixed, " cannot change when resuming; ", out, " keeps its settings"));
    for (const auto& owner : balancer_option_owners())
      if (const char* option = owner.option; a.is_set(option))
        throw UsageError(
            cat("--", option, " cannot change when resuming; ", out, " keeps its balancer"));
    for (const char* option : kCallbackOptions)
      if (a.is_set(option))
        throw UsageError(cat("--", option, " cannot change when resuming; ", out,
                             " continues with its callbacks and their state"));
    for (const char* option : kSharingOptions)
      if (a.is_set(option))
        throw UsageError(cat("--", option, " cannot change when resuming; ", out,
                             " keeps its model's layers"));
    // A run killed before its first checkpoint has its settings: it starts again from them.
    if (!has_checkpoint(out) && !std::filesystem::exists(run_file(out, "run.conf")))
      throw UsageError(cat("--resume ", out, ": no checkpoint there (model.safetensors)"));
    settings = parse_settings(read_text_file(run_file(out, "run.conf")), run_file(out, "run.conf"));
    config = models::load_config_file(run_file(out, "config.toml"));
    if (a.is_set("balancer") && a.get("balancer") != config.balancer.name)
      throw UsageError(cat("--balancer ", a.get("balancer"), ": ", out,
                           " was trained with --balancer ", config.balancer.name,
                           ", and a resumed run keeps its balancer (start a new "
                           "run to use another)"));
  } else {
    if (a.is_set("config") && a.is_set("preset"))
      throw UsageError("give --preset or --config, not both");
    if (a.is_set("config")) {
      config = models::load_config_file(a.get("config"));
    } else {
      try {
        config = models::preset_config(a.get("preset"));
      } catch (const Error& e) {
        throw UsageError(e.what());  // a preset name is a command-line choice
      }
    }
    apply_loss_weights(a.all("loss-weight"), config.tasks);
    config.balancer = balancer_options(a, config);
    config.sharing = sharing_options(a, config);
    settings = new_settings(a);
    out = a.is_set("out") ? a.get("out") : default_out_dir(config.name);
    if (!a.is_set("out") && job->size() > 1) {  // rank 0's clock names the directory
      std::vector<char> name(4096, '\0');
      out.copy(name.data(), name.size() - 1);
      job->broadcast(name.data(), name.size(), 0, "the output directory's name");
      out = name.data();
    }
    if (has_checkpoint(out))
      throw UsageError(cat(out, " already holds a trained model; continue it with --resume ", out,
                           " or choose another --out"));
  }

  const DeviceChoice device_choice = choose_device(a.get("device"));
  datasets::LoadOptions load;
  NetworkOptions options;
  run_options(settings, load, options);
  Setup setup = prepare(config, setting(settings, "data"), load, options, device_choice);
  const Device device = setup.network->options().device;
  settings["data"] = setup.data_source;
  Network& net = *setup.network;
  BalancerOptions balancer = setup.config.balancer;
  // The learned weights' rate defaults to the network's; FAMO's authors use their own (0.025).
  if (balancer.lr == 0 && balancer.name != "famo") balancer.lr = setting_number(settings, "lr");
  balancer.seed = load.seed;
  net.fan_out().set_balancer(make_balancer(balancer));
  auto optimizer = make_optimizer(settings);
  // On the GPU the gradients go through NCCL where the build has it; on the CPU through `job`.
  std::unique_ptr<Communicator> gpu_comm;
  if (device == Device::CUDA) gpu_comm = comm::connect(device, timeout);
  Communicator& training_comm = gpu_comm ? *gpu_comm : *job;
  const bool sync_batchnorm = optional_setting(settings, "sync-batchnorm", "no") == "yes";
  net.set_communicator(&training_comm, sync_batchnorm);

  const double validation_split = setting_number(settings, "val-split");
  const TrainCallbacks callbacks =
      make_train_callbacks(settings, setup, validation_split > 0, out, root);
  std::vector<std::string> metric_lines;
  int initial_epoch = 0;
  // The untrained model as epoch 0: from then on the directory is a run that --resume
  // continues, wherever a kill stops it (and --epochs 0 leaves a model for eval).
  const auto save_untrained = [&] {
    if (!root) return;
    TrainingState state;
    state.metadata["config"] = setup.config.name;
    save_checkpoint(out, net, optimizer.get(), state);
  };
  // Every rank has checked the directory before rank 0 writes to it.
  job->barrier("the checks of the run directory");
  if (resume) {
    // Fail now, not after an epoch of training, when the run cannot be written to.
    if (root) {
      check_writable(out);
      remove_stale_temporary_files(out);
    }
    if (has_checkpoint(out)) {
      const TrainingState state = load_training_state(out, net, *optimizer);
      if (state.epoch > kMaxEpochs)
        fail(out, ": the checkpoint records ", state.epoch, " completed epochs (at most ",
             kMaxEpochs, " are possible): a damaged training_state.safetensors");
      initial_epoch = int(state.epoch);
      restore_callback_state(callbacks.list, state.metadata);
      metric_lines = read_metric_lines(run_file(out, "metrics.jsonl"), initial_epoch);
      if (epochs < initial_epoch)
        throw UsageError(cat("--epochs ", epochs, " is before the ", initial_epoch, " epochs ",
                             out, " already trained"));
    } else {
      save_untrained();
    }
  } else if (root) {
    std::filesystem::create_directories(out);
    remove_stale_temporary_files(out);  // of an earlier attempt at this --out
    write_text_file(run_file(out, "config.toml"), models::to_toml(setup.config));
    write_text_file(run_file(out, "run.conf"), format_settings(settings));
    save_untrained();
  }
  job->barrier("the start of the run directory");

  const models::SharingOptions& sharing = setup.config.sharing;
  say << "polytask: " << setup.config.name
      << (sharing.is_default()
              ? ""
              : cat(" [sharing ", sharing.mode,
                    sharing.branch_after.empty() ? std::string()
                                                 : ", branch after " + sharing.branch_after,
                    "]"))
      << " (" << setup.model->parameter_count() << " parameters) on " << setup.data.description
      << "; device " << device_name(device)
      << (options.precision == kernels::MathPrecision::FP32
              ? ""
              : cat(" (", kernels::precision_name(options.precision), " tensor cores)"))
      << "; output " << out << "\n";
  if (!training_comm.single_process())
    say << "data-parallel: " << training_comm.describe() << "; global batch " << options.max_batch
        << " (" << options.max_batch / training_comm.size() << "-"
        << (options.max_batch + training_comm.size() - 1) / training_comm.size()
        << " rows per rank), BatchNorm statistics "
        << (sync_batchnorm ? "over the global batch" : "per rank") << "\n";
  if (!setup.device_note.empty()) say << "note: " << setup.device_note << "\n";
  if (device == Device::CPU) say << cpu_kernels_line() << "\n";
  if (a.is_set("summary")) say << setup.model->summary() << net.plan_summary();
  if (balancer.name != "static") say << "balancer: " << net.fan_out().balancer().describe() << "\n";
  for (const auto& line : callbacks.descriptions) say << "callback: " << line << "\n";
  if (resume) say << "resuming after epoch " << initial_epoch << "\n";

  Trainer trainer(net, *optimizer);
  FitOptions fit;
  fit.epochs = int(epochs);
  fit.initial_epoch = initial_epoch;
  fit.batch_size = options.max_batch;
  fit.validation_split = validation_split;
  fit.callbacks = callbacks.list;
  fit.seed = load.seed;
  fit.log = root ? &std::cout : nullptr;
  // mpirun hands the ranks a terminal even when its own output goes to a file: no live bar.
  fit.progress = isatty(STDOUT_FILENO) && job->single_process();
  fit.cuda_graphs = !a.is_set("no-cuda-graphs");
  if (root && device == Device::CUDA && fit.cuda_graphs && cuda_sync_after_launch())
    std::cerr << "note: POLYTASK_CUDA_SYNC is set: CUDA graphs are off, so that every kernel "
                 "launch is synchronised and checked on its own\n";
  trainer.fit(setup.data.train, fit, [&](const EpochLog& log) {
    if (!root) return;  // rank 0 writes the run; the others hold the same model
    metric_lines.push_back(epoch_json(log, net));
    write_text_file(run_file(out, "metrics.jsonl"), join_lines(metric_lines));
    TrainingState state;
    state.epoch = log.epoch;
    state.network_step = net.step();
    state.metadata["config"] = setup.config.name;
    add_callback_state(callbacks.list, state.metadata);
    save_checkpoint(out, net, optimizer.get(), state);
  });
  // EarlyStopping's restore of the best weights read them on rank 0 only.
  net.broadcast_parameters();
  // The curves of the whole run (a resumed one included), beside its metrics. Training's
  // results are saved by now: a picture that cannot be drawn is a note, not a failed run.
  if (root && std::filesystem::exists(run_file(out, "metrics.jsonl"))) {
    try {
      draw_curves({out}, setup.config.name, run_file(out, "curves.png"),
                  run_file(out, "curves.svg"));
    } catch (const Error& e) {
      std::cerr << "note: the training curves were not drawn: " << e.what() << "\n";
    }
  }
  const auto test_start = std::chrono::steady_clock::now();
  const auto totals = trainer.evaluate(setup.data.test, options.max_batch);
  const double test_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - test_start).count();
  say << "Test (" << setup.data.test.size()
      << " examples): " << trainer.format_metrics(totals, "test_") << "\n"
      << "test pass: " << std::fixed << std::setprecision(2) << test_seconds << "s\n";
  if (root)
    write_text_file(run_file(out, "test_metrics.json"),
                    totals_json(totals, net, "", test_seconds) + "\n");
  return 0;
}

}  // namespace polytask::cli
