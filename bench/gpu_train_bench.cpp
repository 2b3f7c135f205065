// polytask_train_bench: whole training epochs of a preset, timed end to end, for the GPU
// training comparison against PyTorch on the same GPU (bench/gpu_check.sh,
// bench/peers/pytorch_gpu_train.py, bench/README.md "End-to-end GPU training benchmark").
//
// Not Google Benchmark: the unit is a whole epoch (data gather, forward, losses, backward,
// optimiser, epoch totals) as `polytask train` runs it — Trainer::fit with the data uploaded
// once — plus a test-set evaluation after every epoch, so that "time to target accuracy" is
// measured the way a user would see it.
//
// Output: one JSON object per line on stdout (human notes go to stderr):
//   {"record":"epoch", ...}    after each epoch: epoch_s, images_per_s, train_loss,
//                              test_accuracy per classification head, elapsed_s since the start
//   {"record":"summary", ...}  at the end: first (warm-up) epoch apart from the steady ones,
//                              time to --target test accuracy of the first classification task
// Both carry the run's identity: impl ("polytask"), preset, data, device, batch, precision.
// The PyTorch peer prints the same schema with a "mode" field added.
//
// What is timed:
//  * epoch_s: Trainer::fit's own epoch time (shuffle, every step, reading the epoch's totals
//    back, which waits for the GPU); it excludes the test evaluation and the data upload.
//  * elapsed_s / time_to_target_s: wall time from just before fit() — i.e. including the data
//    upload to the device, the first (warm-up) epoch and every test evaluation so far — until
//    the evaluation after the epoch; the data files are read from disk and the network is built
//    (CUDA context, parameters) before the clock starts, as in the PyTorch peer.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "datasets/data.h"
#include "datasets/labels.h"
#include "engine/balancer.h"
#include "engine/device.h"
#include "engine/device_data.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "models/config.h"

// The library's GEMM/convolution precision switch (NetworkOptions::precision, a
// kernels::MathPrecision) is wired in when the library has it; this file builds either way.
#if __has_include("kernels/precision.h")
#include "kernels/precision.h"
#define POLYTASK_TRAIN_BENCH_HAS_MATH_PRECISION 1
#else
#define POLYTASK_TRAIN_BENCH_HAS_MATH_PRECISION 0
#endif

namespace {

using namespace polytask;
using Clock = std::chrono::steady_clock;
using cli::UsageError;

// ------------------------------------------------------------------ precision

enum class Precision { FP32, TF32, BF16 };

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

// HOOK(precision): TF32/BF16 need the library's switch, NetworkOptions::precision
// (kernels/precision.h: FP32, or tensor cores with TF32/BF16 operands). Where the library has
// it (detected at compile time, below), --precision maps onto it; where it does not, only fp32
// is accepted and tf32/bf16 are refused saying why. bench/gpu_check.sh asks
// `--capabilities` and runs every precision listed, so nothing else needs to change.
template <class Net>
constexpr bool has_precision_option() {
#if POLYTASK_TRAIN_BENCH_HAS_MATH_PRECISION
  return requires(Net& o) { o.precision = kernels::MathPrecision::TF32; };
#else
  return false;
#endif
}

bool precision_supported(Precision p) {
  return p == Precision::FP32 || has_precision_option<NetworkOptions>();
}

template <class Net>
void apply_precision(Precision p, Net& options) {
  if (!precision_supported(p))
    throw UsageError(cat("--precision ", precision_name(p),
                         ": not supported by this library (no NetworkOptions::precision; only "
                         "fp32) — see HOOK(precision) in bench/gpu_train_bench.cpp"));
#if POLYTASK_TRAIN_BENCH_HAS_MATH_PRECISION
  if constexpr (has_precision_option<Net>())
    options.precision = p == Precision::TF32   ? kernels::MathPrecision::TF32
                        : p == Precision::BF16 ? kernels::MathPrecision::BF16
                                               : kernels::MathPrecision::FP32;
#else
  (void)options;  // FP32: the library's only arithmetic
#endif
}

// "fp32" or "fp32,tf32,bf16": what --list-precisions prints, comma-separated.
std::string supported_precisions() {
  std::string out;
  for (const Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
    if (precision_supported(p)) {
      if (!out.empty()) out += ',';
      out += precision_name(p);
    }
  return out;
}

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::FP32;
  if (text == "tf32") return Precision::TF32;
  if (text == "bf16") return Precision::BF16;
  throw UsageError(cat("--precision: unknown precision '", text, "' (fp32, tf32 or bf16)"));
}

// ------------------------------------------------------------------ CUDA graphs in fit()

// Whether this library's Trainer::fit can replay training steps as CUDA graphs
// (FitOptions::cuda_graphs, EpochLog::graphed_steps). Detected at compile time, so this file
// builds against a library with or without that option.
template <class Fit>
constexpr bool has_graph_option = requires(Fit& f) { f.cuda_graphs = true; };

template <class Fit>
void set_cuda_graphs(Fit& fit, bool on) {
  if constexpr (has_graph_option<Fit>) fit.cuda_graphs = on;
}

template <class Log>
std::optional<int64_t> graphed_steps(const Log& log) {
  if constexpr (requires { log.graphed_steps; }) return int64_t(log.graphed_steps);
  return std::nullopt;
}

// ------------------------------------------------------------------ JSON output

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string json_number(std::optional<double> v) { return v ? json_number(*v) : "null"; }

// Keys in insertion order (so the lines read well); values already encoded.
class JsonObject {
 public:
  JsonObject& raw(const std::string& key, const std::string& encoded) {
    fields_.emplace_back(key, encoded);
    return *this;
  }
  JsonObject& str(const std::string& key, const std::string& v) { return raw(key, json_string(v)); }
  JsonObject& num(const std::string& key, double v) { return raw(key, json_number(v)); }
  JsonObject& num(const std::string& key, std::optional<double> v) {
    return raw(key, json_number(v));
  }
  JsonObject& integer(const std::string& key, int64_t v) { return raw(key, std::to_string(v)); }
  JsonObject& boolean(const std::string& key, bool v) { return raw(key, v ? "true" : "false"); }
  std::string text() const {
    std::string out = "{";
    for (size_t i = 0; i < fields_.size(); ++i)
      out += (i ? ", " : "") + json_string(fields_[i].first) + ": " + fields_[i].second;
    return out + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

std::string json_map(const std::vector<std::pair<std::string, double>>& values) {
  JsonObject o;
  for (const auto& [k, v] : values) o.num(k, v);
  return o.text();
}

// ------------------------------------------------------------------ options

cli::Args bench_args() {
  cli::Args a("polytask_train_bench",
              "Trains a preset for a number of epochs and prints one JSON line per epoch (epoch "
              "seconds, images/s, train loss, test accuracy per classification head) and a "
              "summary line (warm-up epoch apart from the steady ones, time to the target test "
              "accuracy). The GPU end-to-end benchmark; see bench/README.md.");
  a.option("preset", "NAME", "mnist-digit-parity", "model preset (polytask models lists them)");
  a.option("data", "SOURCE", "",
           "data directory (IDX or CIFAR-10 files) or synthetic:digits|rgb|two-input; default: "
           "the preset's default_data");
  a.option("epochs", "N", "5", "epochs to train (the first is reported as the warm-up)");
  a.option("batch-size", "N", "128", "examples per step (also the evaluation batch)");
  a.option("device", "cpu|cuda", "cuda", "where to train");
  a.option("precision", "fp32|tf32|bf16", "fp32",
           "arithmetic of the GPU's GEMMs and convolutions (tf32/bf16: tensor cores, when the "
           "library has them: --list-precisions)");
  a.option("target", "ACCURACY", "0.9",
           "test accuracy of the target task for time_to_target_s (0: do not report)");
  a.option("target-task", "TASK", "",
           "the task whose test accuracy is compared with --target (default: the first task "
           "with an accuracy metric)");
  a.option("limit", "N", "0", "use at most the first N examples of each split (0: all)");
  a.option("val-split", "FRACTION", "0",
           "validation fraction held out of training (0: train on the whole training split)");
  a.option("lr", "RATE", "1e-3", "Adam learning rate (eps 1e-7, betas 0.9/0.999)");
  a.option("seed", "N", "0", "initialisation, shuffling and synthetic-data seed");
  a.option("balancer", "NAME", "static",
           "gradient balancing at the fan-out with its defaults (polytask train --help lists them)");
  a.option("cuda-graphs", "default|on|off", "default",
           "replay each training step as a CUDA graph (FitOptions::cuda_graphs) when the "
           "library has that option; default: the library's default");
  a.flag("no-eval", "skip the test evaluation after each epoch (no accuracy, no time to target)");
  a.flag("list-precisions", "print the precisions this build supports, one a line, and exit");
  a.flag("capabilities",
         "print one JSON line: the precisions supported and whether --cuda-graphs on|off works");
  return a;
}

struct Options {
  std::string preset, data;
  int epochs = 5;
  int64_t batch = 128;
  Device device = Device::CUDA;
  Precision precision = Precision::FP32;
  double target = 0.9;
  std::string target_task;
  int64_t limit = 0;
  double val_split = 0;
  double lr = 1e-3;
  uint64_t seed = 0;
  bool eval = true;
  std::string cuda_graphs = "default";
  std::string balancer = "static";
};

Options parse_options(const cli::Args& a) {
  Options o;
  o.preset = a.get("preset");
  o.data = a.get("data");
  const int64_t epochs = a.get_int("epochs");
  if (epochs < 1 || epochs > 100000) throw UsageError(cat("--epochs must be >= 1, got ", epochs));
  o.epochs = int(epochs);
  o.batch = a.get_int("batch-size");
  if (o.batch <= 0) throw UsageError(cat("--batch-size must be positive, got ", o.batch));
  const std::string device = a.get("device");
  if (device == "cpu") o.device = Device::CPU;
  else if (device == "cuda") o.device = Device::CUDA;
  else throw UsageError(cat("--device: expected cpu or cuda, got '", device, "'"));
  o.precision = parse_precision(a.get("precision"));
  o.target = a.get_double("target");
  if (!(o.target >= 0 && o.target <= 1))
    throw UsageError(cat("--target must be an accuracy in [0, 1], got ", a.get("target")));
  o.target_task = a.get("target-task");
  o.limit = a.get_int("limit");
  if (o.limit < 0) throw UsageError("--limit must be non-negative");
  o.val_split = a.get_double("val-split");
  if (!(o.val_split >= 0 && o.val_split < 1))
    throw UsageError(cat("--val-split must be in [0, 1), got ", a.get("val-split")));
  o.lr = a.get_double("lr");
  if (!(o.lr > 0)) throw UsageError(cat("--lr must be positive, got ", a.get("lr")));
  const int64_t seed = a.get_int("seed");
  if (seed < 0) throw UsageError("--seed must be non-negative");
  o.seed = uint64_t(seed);
  o.eval = !a.is_set("no-eval");
  o.balancer = a.get("balancer");
  o.cuda_graphs = a.get("cuda-graphs");
  if (o.cuda_graphs != "default" && o.cuda_graphs != "on" && o.cuda_graphs != "off")
    throw UsageError(cat("--cuda-graphs: expected default, on or off, got '", o.cuda_graphs, "'"));
  if (o.cuda_graphs != "default" && !has_graph_option<FitOptions>)
    throw UsageError(cat("--cuda-graphs ", o.cuda_graphs,
                         ": this library's Trainer has no CUDA-graph option (FitOptions::cuda_graphs)"));
  return o;
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Index of each task's accuracy metric in its TaskTotals, -1 when it has none.
std::vector<int> accuracy_metric_index(const std::vector<Task>& tasks) {
  std::vector<int> index;
  for (const auto& t : tasks) {
    const auto metrics = t.effective_metrics();
    const auto it = std::find(metrics.begin(), metrics.end(), MetricKind::Accuracy);
    index.push_back(it == metrics.end() ? -1 : int(it - metrics.begin()));
  }
  return index;
}

// The test-set evaluation after each epoch, called from inside fit()'s per-epoch callback.
// On the GPU it does not go through Trainer::evaluate: that call turns on — and, returning,
// off — the network's deferred label checks and staged scalars, which fit(), still running with
// its training steps captured as CUDA graphs against them, needs left on (with them off, its
// next step fails in Network::stage_step, or reads a label check back every step). The
// network's own calls leave both alone, exactly as fit()'s validation pass does. The test split
// is uploaded once (DeviceDataset), like the training data; batches run as plain launches.
class TestEvaluator {
 public:
  TestEvaluator(const Dataset& test, Network& net, Trainer& trainer, int64_t batch)
      : test_(test), net_(net), trainer_(trainer), batch_(batch) {
    if (net.options().device != Device::CUDA) return;
    on_device_ = std::make_unique<DeviceDataset>(test, net);
    std::vector<int32_t> rows(static_cast<size_t>(test.size()));
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = int32_t(i);
    indices_ = Tensor::from_vector<int32_t>({test.size()}, rows).to(Device::CUDA);
  }

  std::vector<TaskTotals> run() {
    if (!on_device_) return trainer_.evaluate(test_, batch_);
    auto totals = net_.make_totals();
    const int64_t size = test_.size();
    for (int64_t begin = 0; begin < size; begin += batch_) {
      const int64_t n = std::min(batch_, size - begin);
      on_device_->gather(indices_.data<int32_t>() + begin, n, net_, /*with_targets=*/true);
      net_.forward(n, /*training=*/false);
      net_.accumulate_on_device(totals);
    }
    net_.take_device_totals(totals);  // one read back, which waits for the GPU
    return totals;
  }

 private:
  const Dataset& test_;
  Network& net_;
  Trainer& trainer_;
  int64_t batch_;
  std::unique_ptr<DeviceDataset> on_device_;
  Tensor indices_;
};

int run(const std::vector<std::string>& argv) {
  cli::Args args = bench_args();
  if (!args.parse(argv)) {
    std::string usage = args.usage();  // Args writes "usage: polytask <command>"
    const std::string prefix = "usage: polytask polytask_train_bench";
    if (usage.rfind(prefix, 0) == 0) usage.replace(0, prefix.size(), "usage: polytask_train_bench");
    std::cout << usage;
    return 0;
  }
  if (args.is_set("list-precisions")) {
    for (const Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
      if (precision_supported(p)) std::cout << precision_name(p) << "\n";
    return 0;
  }
  if (args.is_set("capabilities")) {
    std::cout << JsonObject()
                     .str("precisions", supported_precisions())
                     .boolean("cuda_graphs_option", has_graph_option<FitOptions>)
                     .text()
              << "\n";
    return 0;
  }
  const Options opt = parse_options(args);

  models::ModelConfig config;
  try {
    config = models::preset_config(opt.preset);
  } catch (const Error& e) {
    throw UsageError(e.what());  // an unknown preset is a command-line mistake
  }
  NetworkOptions net_options;
  net_options.max_batch = opt.batch;
  net_options.device = opt.device;
  net_options.seed = opt.seed;
  apply_precision(opt.precision, net_options);
  if (opt.device == Device::CUDA && !cuda_available())
    fail("--device cuda: ", cuda_unavailable_reason(),
         " (use --device cpu to run the same benchmark on the CPU)");

  // Data from disk and the network are ready before the clock starts.
  const std::string source = opt.data.empty() ? config.default_data : opt.data;
  if (source.empty()) throw UsageError(cat(config.origin, " names no default_data; pass --data"));
  const auto load_start = Clock::now();
  datasets::LoadOptions load;
  load.seed = opt.seed;
  load.limit = opt.limit;
  datasets::DataSplits data = datasets::load_data(source, load);
  datasets::attach_task_targets(data.train, config.tasks, opt.seed);
  datasets::attach_task_targets(data.test, config.tasks, opt.seed);
  const double load_s = seconds_between(load_start, Clock::now());
  std::map<std::string, Shape> shapes;
  for (const auto& in : data.train.inputs) shapes[in.name] = in.tensor.shape().sample();
  const Model model = models::build_model(config, shapes);
  if (opt.device == Device::CUDA)
    for (const auto& layer : model.graph().layers)
      if (!layer->has_cuda_kernels())
        fail("layer ", layer->name(), " (", layer->kind(), ") of ", opt.preset,
             " has no CUDA kernel yet");
  net_options.fan_out = models::fan_out_value(config);
  Network net(model, config.tasks, net_options);
  BalancerOptions balancer;
  balancer.name = opt.balancer;
  balancer.seed = opt.seed;
  net.fan_out().set_balancer(make_balancer(balancer));
  kernels::AdamParams adam_params;
  adam_params.lr = float(opt.lr);
  Adam adam(adam_params);

  const std::vector<Task>& tasks = net.tasks();
  const std::vector<int> accuracy_index = accuracy_metric_index(tasks);
  int target_task = -1;
  for (size_t t = 0; t < tasks.size(); ++t) {
    if (!opt.target_task.empty() ? tasks[t].name == opt.target_task
                                 : accuracy_index[t] >= 0 && target_task < 0)
      target_task = int(t);
  }
  if (!opt.target_task.empty() && (target_task < 0 || accuracy_index[size_t(target_task)] < 0))
    throw UsageError(cat("--target-task ", opt.target_task, ": no task of ", opt.preset,
                         " of that name has an accuracy metric"));
  const std::string target_name = target_task >= 0 ? tasks[size_t(target_task)].name : "";

  const int64_t total_rows = data.train.size();
  const int64_t train_rows = total_rows - int64_t(double(total_rows) * opt.val_split);
  const std::string device_text = device_name(opt.device);
  auto identity = [&](const char* record) {
    JsonObject o;
    o.str("record", record)
        .str("impl", "polytask")
        .str("preset", opt.preset)
        .str("data", source)
        .str("device", device_text)
        .integer("batch", opt.batch)
        .str("precision", precision_name(opt.precision))
        .str("balancer", opt.balancer);
    return o;
  };
  std::cerr << "polytask_train_bench: " << opt.preset << " (" << model.parameter_count()
            << " parameters) on " << data.description << "; device " << device_text << ", batch "
            << opt.batch << ", " << precision_name(opt.precision) << ", " << opt.epochs
            << " epochs of " << train_rows << " images\n";

  Trainer trainer(net, adam);
  FitOptions fit;
  fit.epochs = opt.epochs;
  fit.batch_size = opt.batch;
  fit.validation_split = opt.val_split;
  fit.seed = opt.seed;
  if (opt.cuda_graphs != "default") set_cuda_graphs(fit, opt.cuda_graphs == "on");

  std::vector<double> epoch_seconds;
  std::optional<double> time_to_target, train_s_to_target, first_epoch_end;
  std::optional<int> target_epoch;
  std::vector<std::pair<std::string, double>> last_accuracy;
  double last_train_loss = std::nan(""), eval_total_s = 0;
  const auto start = Clock::now();
  std::optional<TestEvaluator> evaluator;
  if (opt.eval) evaluator.emplace(data.test, net, trainer, opt.batch);  // uploads the test split
  trainer.fit(data.train, fit, [&](const EpochLog& log) {
    epoch_seconds.push_back(log.seconds);
    if (!first_epoch_end) first_epoch_end = seconds_between(start, Clock::now());
    std::vector<std::pair<std::string, double>> accuracy, other;
    double test_loss = std::nan(""), eval_s = std::nan("");
    if (opt.eval) {
      const auto eval_start = Clock::now();
      const std::vector<TaskTotals> totals = evaluator->run();
      eval_s = seconds_between(eval_start, Clock::now());
      eval_total_s += eval_s;
      test_loss = trainer.weighted_loss(totals);
      for (size_t t = 0; t < tasks.size(); ++t) {
        const auto metrics = tasks[t].effective_metrics();
        for (size_t m = 0; m < metrics.size(); ++m) {
          const std::string key = tasks[t].name;
          if (int(m) == accuracy_index[t]) accuracy.emplace_back(key, totals[t].metric(m));
          else other.emplace_back(key + "_" + metric_name(metrics[m]), totals[t].metric(m));
        }
      }
    }
    const double elapsed = seconds_between(start, Clock::now());
    if (opt.eval && target_task >= 0 && opt.target > 0 && !time_to_target) {
      const auto& totals_acc = accuracy;
      const auto it = std::find_if(totals_acc.begin(), totals_acc.end(),
                                   [&](const auto& kv) { return kv.first == target_name; });
      if (it != totals_acc.end() && it->second >= opt.target) {
        time_to_target = elapsed;
        target_epoch = log.epoch;
        double train_s = 0;
        for (const double s : epoch_seconds) train_s += s;
        train_s_to_target = train_s;
      }
    }
    last_accuracy = accuracy;
    last_train_loss = log.train_loss;
    JsonObject line = identity("epoch");
    line.integer("epoch", log.epoch)
        .integer("epochs", opt.epochs)
        .boolean("warmup", log.epoch == 1)
        .num("epoch_s", log.seconds)
        .integer("train_images", train_rows)
        .num("images_per_s", double(train_rows) / log.seconds)
        .num("train_loss", log.train_loss)
        .raw("test_accuracy", opt.eval ? json_map(accuracy) : "null")
        .raw("test_metrics", opt.eval ? json_map(other) : "null")
        .num("test_loss", test_loss)
        .num("eval_s", eval_s)
        .num("elapsed_s", elapsed);
    const std::optional<int64_t> graphed = graphed_steps(log);
    line.raw("graphed_steps", graphed ? std::to_string(*graphed) : "null");
    std::cout << line.text() << std::endl;
  });
  const double total_s = seconds_between(start, Clock::now());

  std::vector<double> steady(epoch_seconds.begin() + std::min<size_t>(1, epoch_seconds.size()),
                             epoch_seconds.end());
  const double steady_s = median(steady);
  JsonObject summary = identity("summary");
  summary.integer("epochs", opt.epochs)
      .integer("train_images", train_rows)
      .integer("test_images", data.test.size())
      .integer("parameters", model.parameter_count())
      .num("load_s", load_s)
      // Before the first epoch's steps: the test and training data's upload to the device.
      .num("setup_s", first_epoch_end ? *first_epoch_end - epoch_seconds.front() : std::nan(""))
      .num("first_epoch_s", epoch_seconds.empty() ? std::nan("") : epoch_seconds.front())
      .num("steady_epoch_s", steady_s)
      .num("steady_epoch_s_min",
           steady.empty() ? std::nan("") : *std::min_element(steady.begin(), steady.end()))
      .num("steady_images_per_s", double(train_rows) / steady_s)
      .num("eval_s_total", opt.eval ? eval_total_s : std::nan(""))
      .num("total_s", total_s)
      .num("target", opt.target)
      .raw("target_task", target_name.empty() ? "null" : json_string(target_name))
      .num("time_to_target_s", time_to_target)
      .num("train_s_to_target", train_s_to_target)
      .raw("target_epoch", target_epoch ? std::to_string(*target_epoch) : "null")
      .num("final_train_loss", last_train_loss)
      .raw("final_test_accuracy", opt.eval ? json_map(last_accuracy) : "null")
      .str("precisions_supported", supported_precisions())
      .str("cuda_graphs", has_graph_option<FitOptions> ? opt.cuda_graphs : "n/a (no option)");
  std::cout << summary.text() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return run(args);
  } catch (const polytask::cli::UsageError& e) {
    std::cerr << "polytask_train_bench: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const polytask::Error& e) {
    std::cerr << "polytask_train_bench: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "polytask_train_bench: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "polytask_train_bench: error: " << e.what() << "\n";
    return 1;
  }
}
