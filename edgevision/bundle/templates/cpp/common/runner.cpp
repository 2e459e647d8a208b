// The runner's command line, main loop and output: `edgevision-run model.json IMAGE...
// [--runs N] [--json] [--threads N] [--dump-input FILE]`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "runner.hpp"

namespace edgevision {
namespace {

constexpr const char* kUsage =
    "usage: edgevision-run model.json IMAGE... [--runs N] [--json] [--threads N] "
    "[--dump-input FILE]";

int parse_count(const std::string& flag, const std::string& text, int minimum) {
  try {
    size_t used = 0;
    int value = std::stoi(text, &used);
    if (used == text.size() && value >= minimum) return value;
  } catch (const std::exception&) {
  }
  throw RunnerError(flag + " takes an integer >= " + std::to_string(minimum) + ", not '" + text +
                    "'");
}

Options parse_args(int argc, char** argv) {
  Options options;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw RunnerError(arg + " needs a value (" + kUsage + ")");
      return argv[++i];
    };
    if (arg == "--json") {
      options.json = true;
    } else if (arg == "--runs") {
      options.runs = parse_count(arg, value(), 0);
    } else if (arg == "--threads") {
      options.threads = parse_count(arg, value(), 1);
    } else if (arg == "--dump-input") {
      options.dump_input = value();
    } else if (arg.rfind("--", 0) == 0) {
      throw RunnerError("unknown option " + arg + " (" + kUsage + ")");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 2) throw RunnerError(kUsage);
  options.model_json = positional[0];
  options.images.assign(positional.begin() + 1, positional.end());
  return options;
}

struct Ranked {
  int index;
  std::string label;
  float score;
};

// The five highest scores, highest first (ties: the lower index first).
std::vector<Ranked> top5(const std::vector<float>& scores, const ModelInfo& info) {
  std::vector<int> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  size_t k = std::min<size_t>(5, order.size());
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  std::vector<Ranked> ranked;
  for (size_t i = 0; i < k; ++i) {
    ranked.push_back({order[i], info.labels[order[i]], scores[order[i]]});
  }
  return ranked;
}

// NumPy's default percentile (linear interpolation between the closest ranks).
double percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  double rank = q / 100.0 * (values.size() - 1);
  size_t low = static_cast<size_t>(rank);
  size_t high = std::min(low + 1, values.size() - 1);
  return values[low] + (values[high] - values[low]) * (rank - low);
}

// Milliseconds per inference of `input` (at ModelInfo::batch()), `runs` times after `warmup`
// untimed runs.
std::vector<double> time_runs(Session& session, const std::vector<float>& input,
                              const Options& options) {
  for (int i = 0; i < options.warmup; ++i) session.infer(input.data());
  std::vector<double> times;
  for (int i = 0; i < options.runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    session.infer(input.data());
    std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
    times.push_back(elapsed.count());
  }
  return times;
}

void dump_inputs(const std::vector<std::vector<float>>& inputs, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& input : inputs) {
    out.write(reinterpret_cast<const char*>(input.data()),
              static_cast<std::streamsize>(input.size() * sizeof(float)));
  }
  if (!out) throw RunnerError(path + ": cannot write the preprocessed inputs");
}

// `latency` is null when nothing was timed (--runs 0).
void print_json(const std::vector<std::string>& files,
                const std::vector<std::vector<Ranked>>& results,
                const std::vector<double>& times, int batch) {
  nlohmann::json images = nlohmann::json::array();
  for (size_t i = 0; i < files.size(); ++i) {
    nlohmann::json top = nlohmann::json::array();
    for (const Ranked& r : results[i]) {
      top.push_back({{"index", r.index}, {"label", r.label}, {"score", r.score}});
    }
    images.push_back({{"file", files[i]}, {"top5", top}});
  }
  nlohmann::json latency;  // null
  if (!times.empty()) {
    latency = {{"p50", percentile(times, 50)}, {"p90", percentile(times, 90)},
               {"runs", times.size()}, {"batch", batch}};
  }
  std::cout << nlohmann::json{{"images", images}, {"latency_ms", latency}}.dump() << "\n";
}

// No latency line when nothing was timed (--runs 0).
void print_text(const std::vector<std::string>& files,
                const std::vector<std::vector<Ranked>>& results,
                const std::vector<double>& times, int batch) {
  for (size_t i = 0; i < files.size(); ++i) {
    std::printf("%s\n", files[i].c_str());
    for (size_t r = 0; r < results[i].size(); ++r) {
      const Ranked& ranked = results[i][r];
      std::printf("  %zu. %-20s (%d)  %.6g\n", r + 1, ranked.label.c_str(), ranked.index,
                  ranked.score);
    }
  }
  if (times.empty()) return;
  std::printf("latency: p50 %.3f ms, p90 %.3f ms (%zu runs of the first image, batch %d)\n",
              percentile(times, 50), percentile(times, 90), times.size(), batch);
}

int run(int argc, char** argv, const SessionFactory& factory) {
  Options options = parse_args(argc, argv);
  ModelInfo info = load_model_info(options.model_json);
  std::vector<std::vector<float>> inputs;
  for (const std::string& file : options.images) inputs.push_back(load_input(file, info));
  if (!options.dump_input.empty()) {
    dump_inputs(inputs, options.dump_input);
    return 0;
  }
  std::unique_ptr<Session> session = factory(info, options);
  std::vector<std::vector<Ranked>> results;
  for (const auto& input : inputs) {
    std::vector<float> scores = session->infer(input.data());
    if (static_cast<int>(scores.size()) != info.classes) {
      throw RunnerError("the model gave " + std::to_string(scores.size()) +
                        " scores per image; model.json says " + std::to_string(info.classes) +
                        " classes");
    }
    results.push_back(top5(scores, info));
  }
  std::vector<double> times;
  if (options.runs > 0) times = time_runs(*session, inputs.front(), options);
  if (options.json) {
    print_json(options.images, results, times, info.batch());
  } else {
    print_text(options.images, results, times, info.batch());
  }
  return 0;
}

}  // namespace

std::string first_line(const std::string& message) {
  size_t start = message.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return "";
  size_t end = message.find_first_of("\r\n", start);
  return message.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

int run_main(int argc, char** argv, const SessionFactory& factory) {
  try {
    return run(argc, argv, factory);
  } catch (const std::exception& e) {  // RunnerError, and the runtime's own errors
    std::cerr << "edgevision-run: " << first_line(e.what()) << std::endl;
  }
  return 2;
}

}  // namespace edgevision
