// The control socket: a Unix stream socket, one JSON request per line, one reply per line.
// Single-threaded (the daemon's control thread drives it with pollOnce), non-blocking, epoll.
// Security: socket 0660 in a 0750 directory; every peer's credentials (SO_PEERCRED) are checked
// before anything is read: root, the daemon's own uid, or a member of the configured group.
// A request line longer than the cap gets a too_large error and the connection is closed; a line
// with a NUL byte in it gets bad_request. Limits: connections in all, connections per uid (other
// than root: a member of the control group cannot crowd root out), and an idle timeout (no byte
// either way for that long closes the connection), so that idle clients cannot hold the socket.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace nodeplane::control {

struct ServerConfig {
  std::string path;
  std::string group;  // empty: only root and our uid
  size_t maxRequestBytes = 64u << 20;
  size_t maxClients = 64;
  size_t maxClientsPerUid = 8;  // for uids other than root
  std::chrono::milliseconds idleTimeout{60'000};
};

class ControlServer {
 public:
  // Receives one request line (without the newline), returns the reply line (with it).
  using Handler = std::function<std::string(std::string_view line)>;
  // Replies for connection-level failures (too large, not allowed), built by the caller's
  // protocol so the server stays protocol-agnostic.
  using ErrorReply = std::function<std::string(const Error& error)>;

  static Result<std::unique_ptr<ControlServer>> open(const ServerConfig& config, Handler handler,
                                                     ErrorReply errorReply);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Waits up to timeoutMs for activity and serves it. Returns early on a signal.
  void pollOnce(int timeoutMs);

 private:
  using Clock = std::chrono::steady_clock;
  struct Client {
    int fd = -1;
    uid_t uid = 0;
    Clock::time_point lastActivity;
    std::string in;
    std::string out;
    bool closeAfterWrite = false;
  };

  ControlServer(ServerConfig config, Handler handler, ErrorReply errorReply)
      : config_(std::move(config)),
        handler_(std::move(handler)),
        errorReply_(std::move(errorReply)) {}
  Status listen();
  void accept();
  bool peerAllowed(int fd, uid_t* uid, std::string* who) const;
  void refuse(int fd, const Error& error);
  void closeIdle(Clock::time_point now);
  void onReadable(Client& client);
  void onWritable(Client& client);
  void flush(Client& client);
  void drop(int fd);

  ServerConfig config_;
  Handler handler_;
  ErrorReply errorReply_;
  gid_t groupId_ = 0;
  bool hasGroup_ = false;
  int listenFd_ = -1;
  int epollFd_ = -1;
  std::map<int, Client> clients_;
};

}  // namespace nodeplane::control
