// Axis ranges and tick marks at round numbers (steps of 1, 2 or 5 times a power of ten), so the
// numbers on an axis are ones people read at a glance.
#pragma once

#include <string>
#include <vector>

namespace polytask::watch {

struct Axis {
  double lo = 0, hi = 1;      // the range drawn
  std::vector<double> ticks;  // the tick values inside [lo, hi], ascending
  int decimals = 0;           // digits after the point that tell the ticks apart
};

// An axis for values in [min, max] (finite, min <= max): a margin of 5% of the span on each
// side (never below zero for values that are all >= 0, nor above one for values all <= 1),
// then widened out to the nearest ticks.
// About `target` ticks. A single value gets a small range around it.
Axis value_axis(double min, double max, int target = 5);

// An axis for epochs first..last: integer ticks within first..last only, the first epoch always
// among them, a margin so the end points are not on the frame, and a range of one epoch around
// a single one.
Axis epoch_axis(int first, int last, int target = 6);

// A tick's text: fixed point with the axis' decimals, or %g for very large or small numbers.
std::string tick_label(double value, const Axis& axis);

}  // namespace polytask::watch
