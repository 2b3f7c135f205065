// The optional [balancer] table of a model config: every strategy with its options parses,
// round-trips through to_toml, and every mistake is one line naming file:line:column.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "models/config.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask::models {
namespace {

using testing::contains;
using testing::error_message;

// The digit/parity preset with `table` appended after a blank line (its tasks: digit, parity).
ModelConfig with_table(const std::string& table) {
  return parse_config(preset_toml("mnist-digit-parity") + "\n" + table, "m.toml");
}

int preset_lines() {
  const std::string text = preset_toml("mnist-digit-parity");
  return int(std::count(text.begin(), text.end(), '\n'));
}

TEST(ConfigBalancer, AbsentMeansStaticWeights) {
  const ModelConfig c = preset_config("mnist-digit-parity");
  EXPECT_EQ(c.balancer.name, "static");
  EXPECT_EQ(to_toml(c).find("[balancer]"), std::string::npos);
}

TEST(ConfigBalancer, EveryStrategyAndOptionParses) {
  EXPECT_EQ(with_table("[balancer]\nname = \"pcgrad\"\n").balancer.name, "pcgrad");
  const ModelConfig g = with_table("[balancer]\nname = \"gradnorm\"\nalpha = 0.5\nlr = 0.025\n");
  EXPECT_EQ(g.balancer.name, "gradnorm");
  EXPECT_EQ(g.balancer.alpha, 0.5);
  EXPECT_EQ(g.balancer.lr, 0.025);
  EXPECT_EQ(with_table("[balancer]\nname = \"dwa\"\ntemperature = 3\n").balancer.temperature, 3.0);
  EXPECT_EQ(with_table("[balancer]\nname = \"uncertainty\"\nlr = 1e-2\n").balancer.lr, 0.01);
  EXPECT_EQ(
      with_table("[balancer]\nname = \"mgda\"\nnormalization = \"loss+\"\n").balancer.normalization,
      "loss+");
  const ModelConfig d = with_table(
      "[balancer]\nname = \"dynamic\"\nstep = 0.2\nschedule = { parity = [1.0, 0.8, 0.5], digit = "
      "[2] }\n");
  EXPECT_EQ(d.balancer.step, 0.2);
  EXPECT_EQ(d.balancer.schedule.at("parity"), (std::vector<double>{1.0, 0.8, 0.5}));
  EXPECT_EQ(d.balancer.schedule.at("digit"), (std::vector<double>{2.0}));
  EXPECT_EQ(with_table("[balancer]\nname = \"cagrad\"\nc = 0.5\n").balancer.c, 0.5);
  const ModelConfig f = with_table("[balancer]\nname = \"famo\"\nlr = 0.01\ndecay = 0.01\n");
  EXPECT_EQ(f.balancer.lr, 0.01);
  EXPECT_EQ(f.balancer.decay, 0.01);
  EXPECT_EQ(with_table("[balancer]\nname = \"imtl\"\nmode = \"gradient\"\n").balancer.imtl_mode,
            "gradient");
  EXPECT_EQ(with_table("[balancer]\nname = \"aligned-mtl\"\nscale = \"rmse\"\n").balancer.scale,
            "rmse");
  for (const char* name : {"upgrad", "nash-mtl", "rlw", "static-from-norms"})
    EXPECT_EQ(with_table(cat("[balancer]\nname = \"", name, "\"\n")).balancer.name, name);
}

TEST(ConfigBalancer, RoundTripsThroughToToml) {
  for (const char* table : {"[balancer]\nname = \"gradnorm\"\nalpha = 0.75\nlr = 0.01\n",
                            "[balancer]\nname = \"dynamic\"\nschedule = { parity = [1.0, 0.25] }\n",
                            "[balancer]\nname = \"dynamic\"\nstep = 0.3\n",
                            "[balancer]\nname = \"mgda\"\nnormalization = \"l2\"\n",
                            "[balancer]\nname = \"dwa\"\ntemperature = 1.5\n",
                            "[balancer]\nname = \"uncertainty\"\n",
                            "[balancer]\nname = \"cagrad\"\nc = 0.25\n",
                            "[balancer]\nname = \"famo\"\nlr = 0.05\ndecay = 0.0\n",
                            "[balancer]\nname = \"imtl\"\nmode = \"loss\"\nlr = 0.01\n",
                            "[balancer]\nname = \"aligned-mtl\"\nscale = \"median\"\n",
                            "[balancer]\nname = \"nash-mtl\"\n"}) {
    const ModelConfig c = with_table(table);
    const std::string written = to_toml(c);
    EXPECT_NE(written.find("[balancer]"), std::string::npos) << table;
    const ModelConfig back = parse_config(written, "written.toml");
    EXPECT_EQ(back.balancer.name, c.balancer.name) << table;
    EXPECT_EQ(back.balancer.alpha, c.balancer.alpha) << table;
    EXPECT_EQ(back.balancer.lr, c.balancer.lr) << table;
    EXPECT_EQ(back.balancer.temperature, c.balancer.temperature) << table;
    EXPECT_EQ(back.balancer.step, c.balancer.step) << table;
    EXPECT_EQ(back.balancer.normalization, c.balancer.normalization) << table;
    EXPECT_EQ(back.balancer.schedule, c.balancer.schedule) << table;
    EXPECT_EQ(back.balancer.c, c.balancer.c) << table;
    EXPECT_EQ(back.balancer.decay, c.balancer.decay) << table;
    EXPECT_EQ(back.balancer.imtl_mode, c.balancer.imtl_mode) << table;
    EXPECT_EQ(back.balancer.scale, c.balancer.scale) << table;
    EXPECT_EQ(to_toml(back), written) << table;
  }
}

TEST(ConfigBalancer, MistakesNameTheLineAndWhatIsWrong) {
  const std::string line = cat("m.toml:", preset_lines() + 3, ":");  // the table's second line
  std::string m = error_message([] { with_table("[balancer]\nname = \"gradnrom\"\n"); });
  EXPECT_TRUE(contains(m, line)) << m;
  EXPECT_TRUE(contains(m, "unknown balancer 'gradnrom' (did you mean 'gradnorm'?)"));
  EXPECT_TRUE(contains(m, "static, dynamic, uncertainty, gradnorm, dwa, pcgrad, mgda"));
  m = error_message([] { with_table("[balancer]\nname = \"mgda\"\nalpha = 1\n"); });
  EXPECT_TRUE(contains(m, "unknown key 'alpha'")) << m;
  EXPECT_TRUE(contains(m, "mgda takes: name, normalization")) << m;
  m = error_message([] { with_table("[balancer]\nname = \"gradnorm\"\nalpha = -1\n"); });
  EXPECT_TRUE(contains(m, "alpha must be in [0, 100], got -1")) << m;
  m = error_message([] { with_table("[balancer]\nname = \"dwa\"\ntemperature = \"hot\"\n"); });
  EXPECT_TRUE(contains(m, "'temperature' must be a number")) << m;
  m = error_message(
      [] { with_table("[balancer]\nname = \"dynamic\"\nschedule = { parrity = [1.0] }\n"); });
  EXPECT_TRUE(
      contains(m, "schedule for task 'parrity', which is not a task (did you mean 'parity'?)"))
      << m;
  m = error_message(
      [] { with_table("[balancer]\nname = \"dynamic\"\nschedule = { parity = [] }\n"); });
  EXPECT_TRUE(contains(m, "non-empty array")) << m;
  m = error_message(
      [] { with_table("[balancer]\nname = \"dynamic\"\nschedule = { parity = [1.0, -2] }\n"); });
  EXPECT_TRUE(contains(m, "finite non-negative")) << m;
  m = error_message([] { with_table("[balancer]\nname = \"imtl\"\nmode = \"both\"\n"); });
  EXPECT_TRUE(contains(m, "is not one of: hybrid, gradient, loss")) << m;
  m = error_message([] { with_table("[balancer]\nname = \"cagrad\"\nc = -1\n"); });
  EXPECT_TRUE(contains(m, "c must be in [0, 100], got -1")) << m;
  m = error_message([] { with_table("[balancer]\nname = \"mgda\"\nnormalization = \"max\"\n"); });
  EXPECT_TRUE(contains(m, "is not one of: none, l2, loss, loss+")) << m;
  m = error_message([] { with_table("[balancer]\nalpha = 1\n"); });
  EXPECT_TRUE(contains(m, "missing required key 'name'")) << m;
  m = error_message(
      [] { parse_config("balancer = \"mgda\"\n" + preset_toml("mnist-digit-parity"), "m.toml"); });
  EXPECT_TRUE(contains(m, "must be a table")) << m;
  EXPECT_TRUE(contains(m, "m.toml:1:")) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace polytask::models
