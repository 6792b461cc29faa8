// The bench scripts' command line: `--name=value` and bare `--flag` (present, no value), split at the first `=`.
export function options(argv = process.argv.slice(2)) {
  return Object.fromEntries(
    argv.map((arg) => {
      const option = arg.replace(/^--/, '');
      const at = option.indexOf('=');
      return at < 0 ? [option, undefined] : [option.slice(0, at), option.slice(at + 1)];
    }),
  );
}
