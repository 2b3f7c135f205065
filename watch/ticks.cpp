#include "watch/ticks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace polytask::watch {

namespace {

// The round step (1, 2 or 5 times a power of ten) nearest above span / target.
double nice_step(double span, int target) {
  const double raw = span / std::max(target, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
}

// Multiples of step in [lo, hi]; computed as k * step so rounding does not accumulate.
std::vector<double> ticks_between(double lo, double hi, double step) {
  std::vector<double> ticks;
  const double eps = step * 1e-9;
  for (double k = std::ceil((lo - eps) / step); k * step <= hi + eps; ++k) {
    const double t = k * step;
    ticks.push_back(std::abs(t) < eps ? 0.0 : t);  // no "-0"
  }
  return ticks;
}

int decimals_of(double step) {
  return std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
}

}  // namespace

Axis value_axis(double min, double max, int target) {
  double span = max - min;
  double lo = min, hi = max;
  if (span <= std::abs(max) * 1e-12) {
    // One value (or a flat line): show it in the middle of a small range.
    const double half = min == 0 ? 0.5 : std::abs(min) * 0.1;
    lo = min - half;
    hi = max + half;
  } else {
    lo -= span * 0.05;
    hi += span * 0.05;
  }
  if (min >= 0 && lo < 0) lo = 0;
  span = hi - lo;
  const double step = nice_step(span, target);
  Axis axis;
  axis.lo = std::floor(lo / step) * step;
  axis.hi = std::ceil(hi / step) * step;
  if (min >= 0 && axis.lo < 0) axis.lo = 0;
  // Fractions (accuracy) end at 1, not at a tick above what they can reach.
  if (max <= 1 && axis.hi > 1 && min < 1) axis.hi = 1;
  axis.ticks = ticks_between(axis.lo, axis.hi, step);
  axis.decimals = decimals_of(step);
  return axis;
}

Axis epoch_axis(int first, int last, int target) {
  if (last < first) std::swap(first, last);
  Axis axis;
  if (first == last) {
    axis.lo = first - 0.5;
    axis.hi = last + 0.5;
  } else {
    const double margin = std::max(0.03 * (last - first), 0.2);
    axis.lo = first - margin;
    axis.hi = last + margin;
  }
  const double step = std::max(1.0, nice_step(axis.hi - axis.lo, target));
  // No tick at epoch 0 or past the last: those epochs do not exist.
  axis.ticks = ticks_between(first, last, step);
  // The first epoch always has its number: it says where the run starts (a resumed one late).
  if (axis.ticks.empty() || axis.ticks.front() - first >= step / 2)
    axis.ticks.insert(axis.ticks.begin(), first);
  axis.decimals = 0;
  return axis;
}

std::string tick_label(double value, const Axis& axis) {
  char buf[32];
  const double largest = std::max(std::abs(axis.lo), std::abs(axis.hi));
  if (largest >= 1e6 || axis.decimals > 5)
    std::snprintf(buf, sizeof buf, "%.3g", value);
  else
    std::snprintf(buf, sizeof buf, "%.*f", axis.decimals, value);
  return buf;
}

}  // namespace polytask::watch
