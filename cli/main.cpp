// polytask: the command-line front end. Library code throws polytask::Error; this file is the
// only place that prints errors and chooses exit codes (0 ok, 1 runtime error, 2 usage error).
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "datasets/synthetic.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "models/presets.h"

namespace polytask::cli {

namespace {

struct UsageError : Error {
  using Error::Error;
};

const char* kTopUsage =
    "usage: polytask <command> [options]\n\n"
    "Trains multi-task neural networks: one shared trunk, several heads, one weighted loss per "
    "head.\n\ncommands:\n"
    "  train     train a model preset and print per-head metrics\n"
    "  models    list the model presets\n\n"
    "Run 'polytask <command> --help' for a command's options.\n";

void apply_loss_weights(const std::vector<std::string>& specs, std::vector<Task>& tasks) {
  for (const auto& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos)
      throw UsageError(cat("--loss-weight expects TASK=WEIGHT, got '", spec, "'"));
    const std::string name = spec.substr(0, eq), value = spec.substr(eq + 1);
    bool found = false;
    for (auto& t : tasks)
      if (t.name == name) {
        size_t used = 0;
        try {
          t.weight = std::stod(value, &used);
        } catch (...) {
          used = 0;
        }
        if (used == 0 || used != value.size())
          throw UsageError(cat("--loss-weight ", name, ": '", value, "' is not a number"));
        found = true;
      }
    if (!found) {
      std::string known;
      for (const auto& t : tasks) known += (known.empty() ? "" : ", ") + t.name;
      throw UsageError(cat("--loss-weight: no task named '", name, "' (tasks: ", known, ")"));
    }
  }
}

int run_models(const std::vector<std::string>& argv) {
  Args args("models", "Lists the model presets that 'polytask train --preset NAME' accepts.");
  if (!args.parse(argv)) {
    std::cout << args.usage();
    return 0;
  }
  for (const auto& p : models::list_presets()) std::cout << p.name << "\n    " << p.description << "\n";
  return 0;
}

int run_train(const std::vector<std::string>& argv) {
  Args args("train",
            "Trains a multi-task preset and prints, per epoch, the total loss and each head's "
            "loss and metric (training and validation), then per-head test metrics.\n"
            "Data: 'synthetic' generates seeded 28x28 digit-like images with digit and parity "
            "labels (no download needed).");
  args.option("preset", "NAME", "mnist-digit-parity", "model preset (see 'polytask models')");
  args.option("data", "SOURCE", "synthetic", "training data");
  args.option("train-samples", "N", "12000", "synthetic training images");
  args.option("test-samples", "N", "2000", "synthetic test images");
  args.option("epochs", "N", "5", "passes over the training data");
  args.option("batch-size", "N", "128", "examples per step");
  args.option("lr", "RATE", "1e-3", "learning rate");
  args.option("optimizer", "NAME", "adam", "adam (eps 1e-7, as Keras) or sgd");
  args.option("momentum", "M", "0.9", "SGD momentum");
  args.repeated("loss-weight", "TASK=W", "override a task's loss weight");
  args.option("val-split", "FRACTION", "0.1", "validation fraction taken from the end of the training set");
  args.option("seed", "N", "0", "seed for initialisation, shuffling, dropout and synthetic data");
  args.option("device", "cpu|cuda|auto", "auto", "where to train");
  args.flag("summary", "print the model and the trunk/head plan before training");
  try {
    if (!args.parse(argv)) {
      std::cout << args.usage();
      return 0;
    }
  } catch (const Error& e) {
    throw UsageError(e.what());
  }

  const int64_t batch = args.get_int("batch-size");
  if (batch <= 0) throw UsageError(cat("--batch-size must be positive, got ", batch));
  const int64_t epochs = args.get_int("epochs");
  if (epochs < 0) throw UsageError(cat("--epochs must be non-negative, got ", epochs));
  const auto seed = uint64_t(args.get_int("seed"));
  if (args.get("data") != "synthetic")
    throw UsageError(cat("--data: unknown source '", args.get("data"), "' (this release supports: synthetic)"));

  Device device = parse_device(args.get("device"));
  if (args.get("device") == "auto" && device == Device::CUDA) {
    // The handwritten CUDA kernels land in a later release; until then auto means the CPU.
    device = Device::CPU;
  }

  auto preset = models::make_preset(args.get("preset"));
  apply_loss_weights(args.all("loss-weight"), preset.tasks);
  NetworkOptions options;
  options.max_batch = batch;
  options.device = device;
  options.seed = seed;
  Network network(preset.model, preset.tasks, options);
  if (args.is_set("summary")) std::cout << preset.model.summary() << network.plan_summary() << "\n";

  std::unique_ptr<Optimizer> optimizer;
  const double lr = args.get_double("lr");
  if (args.get("optimizer") == "adam") {
    kernels::AdamParams p;
    p.lr = float(lr);
    optimizer = std::make_unique<Adam>(p);
  } else if (args.get("optimizer") == "sgd") {
    kernels::SgdParams p;
    p.lr = float(lr);
    p.momentum = float(args.get_double("momentum"));
    optimizer = std::make_unique<Sgd>(p);
  } else {
    throw UsageError(cat("--optimizer: unknown optimiser '", args.get("optimizer"), "' (adam or sgd)"));
  }

  const Dataset train = datasets::synthetic_digits(args.get_int("train-samples"), seed);
  const Dataset test = datasets::synthetic_digits(args.get_int("test-samples"), seed + 1);
  std::cout << "polytask: preset " << args.get("preset") << ", " << preset.model.parameter_count()
            << " parameters, " << train.size() << " training images (synthetic), device "
            << device_name(device) << "\n";

  Trainer trainer(network, *optimizer);
  FitOptions fit;
  fit.epochs = int(epochs);
  fit.batch_size = batch;
  fit.validation_split = args.get_double("val-split");
  fit.seed = seed;
  fit.log = &std::cout;
  fit.progress = isatty(STDOUT_FILENO);
  trainer.fit(train, fit);

  const auto totals = trainer.evaluate(test, batch);
  std::cout << "Test (" << test.size() << " images): " << trainer.format_metrics(totals, "test_") << "\n";
  return 0;
}

}  // namespace
}  // namespace polytask::cli

int main(int argc, char** argv) {
  using namespace polytask;
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << cli::kTopUsage;
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (args[0] == "train") return cli::run_train(rest);
    if (args[0] == "models") return cli::run_models(rest);
    std::cerr << "polytask: unknown command '" << args[0] << "' (commands: train, models; see --help)\n";
    return 2;
  } catch (const cli::UsageError& e) {
    std::cerr << "polytask: " << e.what() << "\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "polytask: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "polytask: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "polytask: internal error: " << e.what() << "\n";
    return 1;
  }
}
