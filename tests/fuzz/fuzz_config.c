/*
 * fuzz_config.c - a configuration file of any bytes (node/config.c): the INI
 * reader, every option's parser and the error messages.  config_load reads
 * a path, so the bytes go to a memory file named by /proc/self/fd.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static FILE *errors;
	static char path[64];
	struct config *cfg = NULL;
	int r;

	if (fd < 0) {
		fd = memfd_create("passerelle-fuzz.conf", MFD_CLOEXEC);
		errors = fopen("/dev/null", "w");
		if (fd < 0 || errors == NULL)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 ||
	    (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	r = config_load(path, errors, &cfg);
	if ((r == 0) != (cfg != NULL))
		abort(); /* *ret is set only on success */
	config_free(cfg);
	return 0;
}
