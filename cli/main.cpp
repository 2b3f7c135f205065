// polytask: the command-line front end. Library code throws polytask::Error; this file is the
// only place that prints errors and chooses exit codes (0 ok, 1 runtime error, 2 usage error).
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/setup.h"
#include "comm/launch.h"

namespace {

const char* kUsage =
    "usage: polytask <command> [options]\n\n"
    "Trains multi-task neural networks: one shared trunk, several heads, one weighted loss per "
    "head.\n\ncommands:\n"
    "  train     train a preset or config file; per-epoch metrics, checkpoint, test metrics\n"
    "  eval      test metrics of a trained run\n"
    "  predict   per-head predictions for chosen test examples, as a table or a picture\n"
    "  plot      training curves of a run, or of several runs overlaid (PNG and SVG)\n"
    "  models    list the model presets, or print one as a config file to copy and edit\n\n"
    "Run 'polytask <command> --help' for a command's options.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace polytask;
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  // In a data-parallel job the failing rank names itself, and ends every rank (the others may
  // be waiting for it in a collective); a usage error is the same on every rank.
  const comm::LaunchEnvironment job = comm::launch_environment();
  const std::string who =
      "polytask " + args[0] +
      (job.launched && job.size != 1
           ? " (rank " + std::to_string(job.rank) + " of " + std::to_string(job.size) + ")"
           : std::string());
  const auto failed = [&](const std::string& message) {
    std::cerr << who << ": error: " << message << std::endl;
    comm::abort_job(1);
    return 1;
  };
  try {
    if (args[0] == "train") return cli::run_train(rest);
    if (args[0] == "eval") return cli::run_eval(rest);
    if (args[0] == "predict") return cli::run_predict(rest);
    if (args[0] == "models") return cli::run_models(rest);
    if (args[0] == "plot") return cli::run_plot(rest);
    std::cerr << "polytask: unknown command '" << args[0]
              << "' (commands: train, eval, predict, plot, models; see --help)\n";
    return 2;
  } catch (const cli::UsageError& e) {
    if (job.rank == 0) std::cerr << "polytask " << args[0] << ": " << e.what() << "\n";
    return 2;
  } catch (const Error& e) {
    return failed(e.what());
  } catch (const std::bad_alloc&) {
    return failed("out of memory");
  } catch (const std::exception& e) {
    return failed(e.what());
  }
}
