#include "control/client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace nodeplane::control {

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<Json> ControlClient::call(const std::string& op, const Json& args) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  auto remainingMs = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(left.count(), 0));
  };

  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0)
    return makeError(ErrorCode::kInternal, std::string("socket: ") + strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof(addr.sun_path))
    return invalidArgument("control socket path too long: " + path_);
  std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return makeError(ErrorCode::kUnavailable,
                     "cannot connect to the nodeplane daemon at " + path_ + ": " + strerror(errno));

  Request request;
  request.id = 1;
  request.op = op;
  request.args = args;
  const std::string line = formatRequest(request);
  size_t sent = 0;
  std::string sendError;
  while (sent < line.size()) {
    ssize_t n = ::send(fd.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The daemon may have refused us (permissions, load) and closed: its reason is still
      // queued for us to read.
      sendError = std::string("sending to the daemon: ") + strerror(errno);
      break;
    }
    sent += static_cast<size_t>(n);
  }

  std::string reply;
  char buf[64 * 1024];
  while (reply.find('\n') == std::string::npos) {
    pollfd p{fd.get(), POLLIN, 0};
    int rc = ::poll(&p, 1, remainingMs());
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0)
      return makeError(ErrorCode::kUnavailable, "no reply from the daemon within " +
                                                    std::to_string(timeout_.count()) + " ms");
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return makeError(ErrorCode::kUnavailable,
                       sendError.empty() ? "the daemon closed the connection" : sendError);
    reply.append(buf, static_cast<size_t>(n));
  }
  return parseReply(std::string_view(reply).substr(0, reply.find('\n')));
}

}  // namespace nodeplane::control
