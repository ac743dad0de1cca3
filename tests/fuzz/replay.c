/*
 * replay.c - runs a fuzz target's LLVMFuzzerTestOneInput() over files and
 * directories of inputs, without libFuzzer: linked with a target it is
 * fz_replay_<target>, which ctest runs over tests/fuzz/corpus/<target>/
 * (under AddressSanitizer and UBSan in a -DWM_SANITIZE=ON build).
 *
 *   fz_replay_pc_dec [-v] path...
 *
 * A directory stands for the files in it (not recursively, dot files
 * skipped, in name order). A failed check aborts the process, naming the
 * input; a missing path, an unreadable file, or no input at all exits 1.
 * -v names every input before running it (a sanitizer report does not).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fz.h"

static const char *current;
static int verbose;

static void
on_abort(int sig)
{
	static const char m[] = "replay: aborted on input ";

	if (current != NULL) {
		(void)!write(STDERR_FILENO, m, sizeof(m) - 1);
		(void)!write(STDERR_FILENO, current, strlen(current));
		(void)!write(STDERR_FILENO, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Runs one file; 0, or -1 if it cannot be read. */
static int
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat sb;
	uint8_t *p = NULL;
	size_t n;

	if (f == NULL || fstat(fileno(f), &sb) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	n = (size_t)sb.st_size;
	/* exactly n bytes: an overrun of the input is caught too */
	if ((n > 0 && (p = malloc(n)) == NULL) ||
	    fread(p, 1, n, f) != n) {
		fprintf(stderr, "replay: %s: cannot read\n", path);
		free(p);
		fclose(f);
		return -1;
	}
	fclose(f);
	if (verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
	current = path;
	LLVMFuzzerTestOneInput(n > 0 ? p : (const uint8_t *)"", n);
	current = NULL;
	free(p);
	return 0;
}

/* Runs a file or the files in a directory; counts them in *count. */
static int
run_path(const char *path, unsigned long *count)
{
	struct dirent **ents;
	struct stat sb;
	int n, rc = 0;

	if (stat(path, &sb) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		if (run_file(path) != 0)
			return -1;
		(*count)++;
		return 0;
	}
	if ((n = scandir(path, &ents, NULL, alphasort)) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char *sub;

		if (ents[i]->d_name[0] != '.' &&
		    asprintf(&sub, "%s/%s", path, ents[i]->d_name) >= 0) {
			if (stat(sub, &sb) == 0 && S_ISREG(sb.st_mode)) {
				if (run_file(sub) != 0)
					rc = -1;
				else
					(*count)++;
			}
			free(sub);
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

int
main(int argc, char **argv)
{
	unsigned long count = 0;
	int rc = 0, i = 1;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		verbose = 1;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s [-v] file-or-directory...\n",
		    argv[0]);
		return 2;
	}
	signal(SIGABRT, on_abort);
	for (; i < argc; i++)
		if (run_path(argv[i], &count) != 0)
			rc = 1;
	printf("replay: %lu inputs ran\n", count);
	if (count == 0) {
		fprintf(stderr, "replay: no inputs\n");
		rc = 1;
	}
	return rc;
}
