// make_balancer: a strategy by name, its options validated.
#include <algorithm>
#include <cmath>

#include "engine/balancers/strategies.h"
#include "kernels/error.h"

namespace polytask {

const std::vector<std::string>& balancer_names() {
  static const std::vector<std::string> names = {
      "static", "dynamic", "uncertainty", "gradnorm",    "dwa", "pcgrad",           "mgda",
      "upgrad", "famo",    "cagrad",      "nash-mtl",    "imtl", "aligned-mtl",     "rlw",
      "static-from-norms"};
  return names;
}

namespace balancing {
double balancer_learning_rate(const BalancerOptions& options, double fallback) {
  return options.lr > 0 ? options.lr : fallback;
}
}  // namespace balancing

std::unique_ptr<Balancer> make_balancer(const BalancerOptions& o) {
  const auto check = [&](bool ok, const char* option, double value, const char* rule) {
    if (!ok) fail("balancer '", o.name, "': ", option, " must be ", rule, ", got ", value);
  };
  check(std::isfinite(o.lr) && o.lr >= 0 && o.lr < 1e3, "lr", o.lr,
        "a non-negative number below 1000 (0: the default)");
  check(std::isfinite(o.alpha) && o.alpha >= 0 && o.alpha <= 100, "alpha", o.alpha, "in [0, 100]");
  check(std::isfinite(o.temperature) && o.temperature > 0 && o.temperature <= 1e6, "temperature",
        o.temperature, "positive");
  check(std::isfinite(o.step) && o.step > 0 && o.step <= 2, "step", o.step, "in (0, 2]");
  if (o.normalization != "none" && o.normalization != "l2" && o.normalization != "loss" &&
      o.normalization != "loss+")
    fail("balancer '", o.name, "': normalization must be none, l2, loss or loss+, got '",
         o.normalization, "'");
  check(std::isfinite(o.c) && o.c >= 0 && o.c <= 100, "c", o.c, "in [0, 100]");
  check(std::isfinite(o.decay) && o.decay >= 0 && o.decay <= 1, "decay", o.decay, "in [0, 1]");
  if (o.imtl_mode != "hybrid" && o.imtl_mode != "gradient" && o.imtl_mode != "loss")
    fail("balancer '", o.name, "': imtl mode must be hybrid, gradient or loss, got '", o.imtl_mode,
         "'");
  if (o.scale != "min" && o.scale != "median" && o.scale != "rmse")
    fail("balancer '", o.name, "': scale must be min, median or rmse, got '", o.scale, "'");
  if (!o.schedule.empty() && o.name != "dynamic")
    fail("balancer '", o.name, "': a weight schedule needs the dynamic balancer");
  using namespace balancing;
  if (o.name == "static") return make_static_weights(o);
  if (o.name == "dynamic") return make_dynamic_weights(o);
  if (o.name == "uncertainty") return make_uncertainty(o);
  if (o.name == "gradnorm") return make_gradnorm(o);
  if (o.name == "dwa") return make_dwa(o);
  if (o.name == "pcgrad") return make_pcgrad(o);
  if (o.name == "mgda") return make_mgda(o);
  if (o.name == "upgrad") return make_upgrad(o);
  if (o.name == "famo") return make_famo(o);
  if (o.name == "cagrad") return make_cagrad(o);
  if (o.name == "nash-mtl") return make_nash_mtl(o);
  if (o.name == "imtl") return make_imtl(o);
  if (o.name == "aligned-mtl") return make_aligned_mtl(o);
  if (o.name == "rlw") return make_rlw(o);
  if (o.name == "static-from-norms") return make_static_from_norms(o);
  std::string known;
  for (const auto& n : balancer_names()) known += (known.empty() ? "" : ", ") + n;
  fail("unknown balancer '", o.name, "' (known: ", known, ")");
}

}  // namespace polytask
