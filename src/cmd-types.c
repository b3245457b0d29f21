/*
 * cmd-types.c: dwa types: the registry of task types (dwa.task_types).
 * dwa types [list] lists them, filtered by tags; dwa types sync DIR asks
 * each executable directly in DIR to --describe itself and upserts the
 * answer as an exec type; dwa types export prints TypeScript definitions
 * of the registered types' inputs and outputs.
 *
 * sync walks the directory and describes each program with registry.c,
 * which dwad shares; this file only reports what it answers.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "pq.h"
#include "registry.h"
#include "util.h"
#include "xmalloc.h"

#define CMD_TYPES_CELL_MAX	50

/* $1: the tags as a JSON array; $2: "t" to match any of them. */
#define CMD_TYPES_WHERE							\
	"WHERE cardinality(f.tags) = 0 OR CASE WHEN $2::boolean "	\
	"  THEN t.tags && f.tags ELSE t.tags @> f.tags END "

#define CMD_TYPES_FROM							\
	"FROM dwa.task_types t, (SELECT ARRAY(SELECT "			\
	"  jsonb_array_elements_text($1::jsonb)) AS tags) f "

static const char *cmd_types_sql =
    "SELECT t.name, t.executor, t.tags, t.description "
    CMD_TYPES_FROM CMD_TYPES_WHERE "ORDER BY t.name";

static const char *cmd_types_json_sql =
    "SELECT json_build_object('count', count(*), "
    "  'types', coalesce(json_agg(json_build_object("
    "    'name', t.name, 'executor', t.executor, 'tags', t.tags, "
    "    'description', t.description, "
    "    'timeout', extract(epoch FROM t.timeout)::float8, "
    "    'command', t.command) ORDER BY t.name), '[]'))::text "
    CMD_TYPES_FROM CMD_TYPES_WHERE;

static int	cmd_types_exec(const struct cmd_entry *, int, char **);

static const struct cmd_entry cmd_types_list_entry = {
	.name = "types",
	.usage = "types list [--tag T]... [--any] [--json]",
	.summary = "list the registered task types having all the given tags",
	.options =
	    "  -t, --tag T         only types tagged T (repeatable: all of "
	    "them)\n"
	    "  -a, --any           any of the tags rather than all\n"
	    "  -j, --json          print JSON: {\"count\", \"types\": [...]}\n",
	.exec = cmd_types_exec,
};

static const struct cmd_entry cmd_types_sync_entry = {
	.name = "types sync",
	.usage = "types sync DIR",
	.summary = "run each executable in DIR with --describe and register "
	    "what it answers\nas an exec task type (DWA_DESCRIBE_TIMEOUT: "
	    "seconds each may take, 10)",
	.options = "",
	.exec = cmd_types_exec,
};

static const struct cmd_entry cmd_types_export_entry = {
	.name = "types",
	.usage = "types export --format typescript",
	.summary = "print TypeScript definitions of every registered type's "
	    "input and output",
	.options =
	    "  -f, --format F      output format: typescript\n",
	.exec = cmd_types_exec,
};

/* --- list ----------------------------------------------------------- */

static int
cmd_types_list(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "tag", required_argument, NULL, 't' },
		{ "any", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_entry	*entry = &cmd_types_list_entry;
	const char		*params[2];
	json_t			*tags;
	char			*text;
	PGresult		*res;
	int			 ch, code = -1, json = 0, any = 0;

	optind = 0;
	tags = json_array();
	while ((ch = getopt_long(argc, argv, "t:ajh", longopts,
	    NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1) {
				json_decref(tags);
				return (code);
			}
			continue;
		}
		switch (ch) {
		case 't':
			json_array_append_new(tags, json_string(optarg));
			break;
		case 'a':
			any = 1;
			break;
		case 'j':
			json = 1;
			break;
		}
	}
	if (optind != argc) {
		json_decref(tags);
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind]));
	}
	text = json_dumps(tags, JSON_COMPACT);
	json_decref(tags);
	params[0] = text;
	params[1] = any ? "t" : "f";
	res = cmd_query(entry, json ? cmd_types_json_sql : cmd_types_sql, 2,
	    params, &code);
	free(text);
	if (res == NULL)
		return (code);
	return (cmd_print_result(res, json, CMD_TYPES_CELL_MAX));
}

/* --- sync ----------------------------------------------------------- */

static int
cmd_types_namecmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

static int
cmd_types_sync(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_entry	*entry = &cmd_types_sync_entry;
	PGconn			*conn;
	const char		*env;
	char			*cause, *name, **names;
	size_t			 i;
	long			 secs;
	int			 ch, code = -1, timeout_ms, skipped = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code) && code != -1)
			return (code);
	}
	if (optind == argc)
		return (cmd_usage(entry, "missing DIR"));
	if (optind + 1 < argc)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind + 1]));

	timeout_ms = REGISTRY_TIMEOUT_MS;
	if ((env = getenv("DWA_DESCRIBE_TIMEOUT")) != NULL && *env != '\0') {
		if (util_parse_int(env, 1, 3600, &secs, &cause) != 0) {
			code = cmd_fail(entry, "DWA_DESCRIBE_TIMEOUT: %s",
			    cause);
			free(cause);
			return (code);
		}
		timeout_ms = (int)secs * 1000;
	}

	if ((names = registry_programs(argv[optind], &cause)) == NULL) {
		code = cmd_fail(entry, "%s: %s", argv[optind], cause);
		free(cause);
		return (code);
	}

	conn = cmd_connect(entry);
	for (i = 0; names[i] != NULL; i++) {
		/* what the program writes to stderr comes after our lines */
		fflush(stdout);
		fflush(stderr);
		if (registry_sync_one(conn, names[i], timeout_ms, &name,
		    &cause) != 0) {
			cmd_fail(entry, "%s: %s", names[i], cause);
			free(cause);
			skipped = 1;
			continue;
		}
		printf("synced %s\n", name);
		free(name);
	}
	registry_programs_free(names);
	PQfinish(conn);
	return (skipped ? DWA_EXIT_FAILURE : DWA_EXIT_OK);
}

/* --- export --------------------------------------------------------- */

/* Print s as a TypeScript type name part: "video.extract_frames" ->
 * "VideoExtractFrames". */
static void
cmd_types_pascal(const char *s)
{
	int	up = 1;

	if (isdigit((unsigned char)*s))
		putchar('T');
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s)) {
			up = 1;
			continue;
		}
		putchar(up ? toupper((unsigned char)*s) : *s);
		up = 0;
	}
}

/* Print a JSON string literal (also a TypeScript one). */
static void
cmd_types_quote(const char *s)
{
	json_t	*v;
	char	*text;

	v = json_string(s);
	if (v == NULL) {
		fputs("\"\"", stdout);
		return;
	}
	text = json_dumps(v, JSON_ENCODE_ANY);
	fputs(text, stdout);
	free(text);
	json_decref(v);
}

static void	cmd_types_ts_object(json_t *, int);
static void	cmd_types_ts_type(json_t *, int);

/* Print T[] for the element type v; (T)[] when T is an object type. */
static void
cmd_types_ts_array(json_t *v, int depth)
{
	int	paren = json_is_object(v);

	if (paren)
		putchar('(');
	cmd_types_ts_type(v, depth);
	fputs(paren ? ")[]" : "[]", stdout);
}

/* Print the TypeScript type of a schema-like value. */
static void
cmd_types_ts_type(json_t *v, int depth)
{
	const char	*s;
	size_t		 len;

	if (json_is_object(v)) {
		if (json_is_object(json_object_get(v, "properties"))) {
			cmd_types_ts_object(json_object_get(v, "properties"),
			    depth);
			return;
		}
		if (json_is_string(json_object_get(v, "type"))) {
			s = json_string_value(json_object_get(v, "type"));
			if (strcmp(s, "array") == 0 &&
			    json_object_get(v, "items") != NULL) {
				cmd_types_ts_array(json_object_get(v, "items"),
				    depth);
				return;
			}
			cmd_types_ts_type(json_object_get(v, "type"), depth);
			return;
		}
		cmd_types_ts_object(v, depth);
		return;
	}
	if (json_is_array(v) && json_array_size(v) == 1) {
		cmd_types_ts_array(json_array_get(v, 0), depth);
		return;
	}
	if (!json_is_string(v)) {
		fputs("unknown", stdout);
		return;
	}
	s = json_string_value(v);
	len = strlen(s);
	if (len > 2 && strcmp(s + len - 2, "[]") == 0) {
		json_t *inner = json_stringn(s, len - 2);

		cmd_types_ts_array(inner, depth);
		json_decref(inner);
	} else if (strcmp(s, "string") == 0 || strcmp(s, "str") == 0)
		fputs("string", stdout);
	else if (strcmp(s, "number") == 0 || strcmp(s, "integer") == 0 ||
	    strcmp(s, "int") == 0 || strcmp(s, "float") == 0)
		fputs("number", stdout);
	else if (strcmp(s, "boolean") == 0 || strcmp(s, "bool") == 0)
		fputs("boolean", stdout);
	else if (strcmp(s, "null") == 0)
		fputs("null", stdout);
	else if (strcmp(s, "object") == 0)
		fputs("Record<string, unknown>", stdout);
	else if (strcmp(s, "array") == 0)
		fputs("unknown[]", stdout);
	else
		fputs("unknown", stdout);
}

/* Is s a plain identifier, usable unquoted as a property name? */
static int
cmd_types_ident(const char *s)
{
	if (*s == '\0' || isdigit((unsigned char)*s))
		return (0);
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '$')
			return (0);
	}
	return (1);
}

/*
 * The keys of obj, sorted: jsonb keeps no order, so print a stable one.
 * The caller frees the array; the keys are borrowed from obj.
 */
static const char **
cmd_types_keys(json_t *obj, size_t *n)
{
	const char	**keys, *key;
	json_t		 *v;

	*n = 0;
	keys = xcalloc(json_object_size(obj) + 1, sizeof *keys);
	json_object_foreach(obj, key, v)
		keys[(*n)++] = key;
	qsort(keys, *n, sizeof *keys, cmd_types_namecmp);
	return (keys);
}

/* Print key: type for one field of an object. */
static void
cmd_types_ts_field(const char *key, json_t *v, int depth)
{
	if (cmd_types_ident(key))
		fputs(key, stdout);
	else
		cmd_types_quote(key);
	fputs(": ", stdout);
	cmd_types_ts_type(v, depth);
}

/* Print { key: type; ... } for an object of schema-like fields. */
static void
cmd_types_ts_object(json_t *obj, int depth)
{
	const char	**keys;
	size_t		  i, n;

	if (depth > 16 || json_object_size(obj) == 0) {
		fputs("Record<string, unknown>", stdout);
		return;
	}
	keys = cmd_types_keys(obj, &n);
	fputs("{ ", stdout);
	for (i = 0; i < n; i++) {
		cmd_types_ts_field(keys[i], json_object_get(obj, keys[i]),
		    depth + 1);
		fputs("; ", stdout);
	}
	putchar('}');
	free(keys);
}

/* export interface <Name><Kind> { ... } for metadata.inputs/outputs. */
static void
cmd_types_ts_interface(const char *name, const char *kind, json_t *schema)
{
	const char	**keys;
	size_t		  i, n;

	if (json_is_object(schema) &&
	    json_is_object(json_object_get(schema, "properties")))
		schema = json_object_get(schema, "properties");
	fputs("export interface ", stdout);
	cmd_types_pascal(name);
	printf("%s {\n", kind);
	if (!json_is_object(schema) || json_object_size(schema) == 0)
		fputs("  [key: string]: unknown;\n", stdout);
	else {
		keys = cmd_types_keys(schema, &n);
		for (i = 0; i < n; i++) {
			fputs("  ", stdout);
			cmd_types_ts_field(keys[i],
			    json_object_get(schema, keys[i]), 1);
			fputs(";\n", stdout);
		}
		free(keys);
	}
	fputs("}\n", stdout);
}

static int
cmd_types_export(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_entry	*entry = &cmd_types_export_entry;
	const char		*format = NULL, *name;
	json_t			*meta;
	PGresult		*res;
	int			 ch, code = -1, r, nrows;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		if (ch == 'f')
			format = optarg;
	}
	if (optind != argc)
		return (cmd_usage(entry, "export: unexpected argument '%s'",
		    argv[optind]));
	if (format == NULL)
		return (cmd_usage(entry, "export: missing --format"));
	if (strcmp(format, "typescript") != 0)
		return (cmd_usage(entry, "export: unknown format '%s' (use "
		    "typescript)", format));

	res = cmd_query(entry, "SELECT name, metadata::text FROM "
	    "dwa.task_types ORDER BY name", 0, NULL, &code);
	if (res == NULL)
		return (code);
	nrows = PQntuples(res);
	printf("// Generated by 'dwa types export --format typescript'.\n");
	for (r = 0; r < nrows; r++) {
		name = PQgetvalue(res, r, 0);
		meta = json_loads(PQgetvalue(res, r, 1), 0, NULL);
		printf("\n");
		cmd_types_ts_interface(name, "Input",
		    json_object_get(meta, "inputs"));
		cmd_types_ts_interface(name, "Output",
		    json_object_get(meta, "outputs"));
		json_decref(meta);
	}
	printf("\nexport type TaskName =");
	if (nrows == 0)
		printf(" never");
	for (r = 0; r < nrows; r++) {
		printf("%s", r == 0 ? "\n  | " : "\n  | ");
		cmd_types_quote(PQgetvalue(res, r, 0));
	}
	printf(";\n");
	PQclear(res);
	return (DWA_EXIT_OK);
}

/* --- dispatch ------------------------------------------------------- */

static int
cmd_types_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	const char	*form = "list";

	if (argc > 1 && argv[1][0] != '-')
		form = argv[1];
	else if (argc > 1 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0))
		return (cmd_help(entry));
	if (argc > 1 && argv[1][0] != '-') {
		/* getopt names the form's argv[0]: say "types" */
		argv[1] = argv[0];
		argc--;
		argv++;
	}
	if (strcmp(form, "list") == 0)
		return (cmd_types_list(argc, argv));
	if (strcmp(form, "sync") == 0)
		return (cmd_types_sync(argc, argv));
	if (strcmp(form, "export") == 0)
		return (cmd_types_export(argc, argv));
	return (cmd_usage(entry, "unknown form '%s' (list, sync or export)",
	    form));
}

const struct cmd_entry cmd_types_entry = {
	.name = "types",
	.usage = "types [list] [--tag T]... [--any] [--json]\n"
	    "       dwa types sync DIR\n"
	    "       dwa types export --format typescript",
	.summary = "list, register (sync) and export task types",
	.options =
	    "  -t, --tag T         only types tagged T (repeatable: all of "
	    "them)\n"
	    "  -a, --any           any of the tags rather than all\n"
	    "  -j, --json          print JSON: {\"count\", \"types\": [...]}\n"
	    "\n"
	    "sync DIR runs each executable in DIR with --describe (at most "
	    "DWA_DESCRIBE_TIMEOUT\n"
	    "seconds, 10) and upserts its answer as an exec type; programs "
	    "that answer\n"
	    "badly are reported and skipped (exit 1).\n"
	    "export --format typescript prints interfaces for every type's "
	    "input and output.\n"
	    "\n",
	.exec = cmd_types_exec,
};
