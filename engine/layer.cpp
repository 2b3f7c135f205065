#include "engine/layer.h"

namespace polytask {

void Layer::set_name(std::string name) {
  name_ = std::move(name);
  for (auto& p : parameters_) p->name = name_ + p->name.substr(p->name.find('.'));
}

std::vector<AuxSpec> Layer::aux(const std::vector<Shape>&, int64_t) const { return {}; }
int64_t Layer::workspace_elements(const std::vector<Shape>&, int64_t) const { return 0; }

Parameter& Layer::add_parameter(const std::string& suffix, const Shape& shape, Init init,
                                int64_t fan_in, int64_t fan_out, bool trainable) {
  auto p = std::make_unique<Parameter>();
  p->name = name_ + "." + suffix;
  p->shape = shape;
  p->init = init;
  p->fan_in = fan_in;
  p->fan_out = fan_out;
  p->trainable = trainable;
  parameters_.push_back(std::move(p));
  return *parameters_.back();
}

void Layer::error(const std::string& message) const {
  fail(name_.empty() ? kind_ : name_, " (", kind_, "): ", message);
}

void Layer::expect_inputs(const std::vector<Shape>& inputs, size_t count) const {
  if (inputs.size() != count)
    error(cat("expects ", count, " input", count == 1 ? "" : "s", ", got ", inputs.size()));
}

}  // namespace polytask
