// Work other threads (the metrics HTTP server's, DPDK's telemetry thread) hand to the control
// thread, so that everything they report is read where it is written: the node controller, the
// registries and the snapshot are control-thread state, never locked. The control loop runs
// what is waiting every tick (10 ms); a caller waits at most its timeout.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>

namespace nodeplane::control {

class ControlMailbox {
 public:
  // Any thread: `fn` run on the control thread, its result; nullopt after `timeout` (the
  // control thread is stuck or gone; `fn` may still run later, its result dropped) or once the
  // mailbox is closed.
  template <class T>
  std::optional<T> call(std::function<T()> fn, std::chrono::milliseconds timeout) {
    auto task = std::make_shared<std::packaged_task<T()>>(std::move(fn));
    std::future<T> result = task->get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_) return std::nullopt;
      pending_.push_back([task] { (*task)(); });
    }
    if (result.wait_for(timeout) != std::future_status::ready) return std::nullopt;
    try {
      return result.get();
    } catch (const std::future_error&) {  // dropped by close(): never run
      return std::nullopt;
    }
  }

  // Control thread: runs everything waiting.
  void runPending() {
    std::deque<std::function<void()>> work;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      work.swap(pending_);
    }
    for (auto& w : work) w();
  }

  // Control thread, at shutdown: later calls return nullopt at once; waiting work is dropped
  // (its callers time out).
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    pending_.clear();
  }

 private:
  std::mutex mutex_;
  std::deque<std::function<void()>> pending_;
  bool closed_ = false;
};

}  // namespace nodeplane::control
