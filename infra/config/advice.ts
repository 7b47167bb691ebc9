/**
 * Commands that messages advise, written once so each works as printed: every
 * pulumi command goes through `npm run pulumi`, which brings the project's CLI,
 * state backend and passphrase (scripts/pulumi.ts).
 */

export function pulumiCommand(args: string): string {
  return `npm run pulumi -- ${args}`;
}

/** The command that sets one secret of a stack, the value on stdin (on the command line it would show in ps). */
export function secretAdvice(stack: string, key: string): string {
  const source: Record<string, string> = {
    dbPassword: "openssl rand -base64 24 |",
    hashSalt: "openssl rand -base64 48 |",
    managerToken: "openssl rand -hex 24 |",
    cronKey: "openssl rand -hex 24 |",
  };
  const set = pulumiCommand(`config set --stack ${stack} --secret ${key}`);
  // The key file the certificate was requested with.
  if (key === "tlsPrivateKey") return `${set} < balancer.key`;
  return source[key] === undefined ? `${set} < ~/.ssh/drupal-cluster-${stack}` : `${source[key]} ${set}`;
}
