#include "control/cni/ipam.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "core/json.h"

extern char** environ;

namespace nodeplane::cni {

namespace {

std::string findPlugin(const std::string& type, const std::string& cniPath) {
  std::stringstream ss(cniPath);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string path = dir + "/" + type;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

}  // namespace

Result<Json> invokeDelegate(const std::string& type, const std::string& command,
                            const std::string& stdinConfig, const std::string& cniPath,
                            PluginError* error) {
  if (type.empty() || type.find('/') != std::string::npos)
    return invalidArgument("ipam.type: '" + type + "' is not a plugin name");
  const std::string path = findPlugin(type, cniPath);
  if (path.empty())
    return makeError(ErrorCode::kNotFound,
                     "IPAM plugin '" + type + "' not found in CNI_PATH " + cniPath);

  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "CNI_COMMAND=", 12) != 0) env.emplace_back(*e);
  env.push_back("CNI_COMMAND=" + command);
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);

  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
    return makeError(ErrorCode::kInternal, std::string("pipe: ") + strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::string argv0 = path;
  char* argv[] = {argv0.data(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, path.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    return makeError(ErrorCode::kInternal, "starting " + path + ": " + strerror(rc));
  }
  // The config is small (well under a pipe buffer), so write it all, then read.
  size_t written = 0;
  while (written < stdinConfig.size()) {
    ssize_t n = ::write(in[1], stdinConfig.data() + written, stdinConfig.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  ::close(in[1]);
  std::string output;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(out[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }

  std::string why;
  auto parsed = output.empty() ? std::optional<Json>(Json(nullptr)) : json::parse(output, &why);
  const bool success = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (success) {
    if (!parsed)
      return makeError(ErrorCode::kInternal,
                       "IPAM plugin " + type + " printed output that is " + why);
    return *parsed;
  }
  std::string message = "IPAM plugin " + type + " " + command + " failed";
  if (parsed && json::field(*parsed, "msg").is_string()) {
    const Json& doc = *parsed;
    const std::string msg = json::string(doc, "msg"), details = json::string(doc, "details");
    if (error) {
      error->code = static_cast<int>(json::integer(doc, "code", 999));
      error->msg = msg;
      error->details = details;
    }
    message += ": " + msg + (details.empty() ? "" : " (" + details + ")");
  }
  return makeError(ErrorCode::kInternal, message);
}

}  // namespace nodeplane::cni
