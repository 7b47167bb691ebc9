/**
 * A stack setting that cannot be used. The message always names the key (as the
 * operator writes it with `pulumi config set`) and what would be accepted, so the
 * fix is obvious without reading our code.
 */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`config ${key}: ${problem}`);
    this.name = "ConfigError";
  }
}
