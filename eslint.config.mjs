// One linter for both products (the cluster program and proxy-node); Prettier
// owns the layout (npm run lint runs both).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "build/", "proxy-node/dist/", ".pulumi-state/", ".pulumi-work/", ".tools/", "backups/", "**/*.js", "**/*.mjs"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      // Validators and parsers here match control characters on purpose: refusing them is their job.
      "no-control-regex": "off",
    },
  },
  {
    // Tests edit raw stack values and read engine payloads as plain JSON; product code has no `any`.
    files: ["test/**/*.ts", "proxy-node/test/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
);
