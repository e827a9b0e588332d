/* One line per event on stderr: time, level, subsystem, message. */
#ifndef MC_LOG_H
#define MC_LOG_H

enum mc_log_level {
	MC_LOG_DEBUG,
	MC_LOG_INFO,
	MC_LOG_WARN,
	MC_LOG_ERROR,
};

/* Returns 0, or -EINVAL for a name that is not debug|info|warn|error. */
int mc_log_parse_level(const char *name, enum mc_log_level *out);
void mc_log_set_level(enum mc_log_level level);
enum mc_log_level mc_log_get_level(void);

void mc_log(enum mc_log_level level, const char *subsystem, const char *fmt,
            ...) __attribute__((format(printf, 3, 4)));

#define mc_debug(sub, ...) mc_log(MC_LOG_DEBUG, sub, __VA_ARGS__)
#define mc_info(sub, ...)  mc_log(MC_LOG_INFO, sub, __VA_ARGS__)
#define mc_warn(sub, ...)  mc_log(MC_LOG_WARN, sub, __VA_ARGS__)
#define mc_error(sub, ...) mc_log(MC_LOG_ERROR, sub, __VA_ARGS__)

#endif
