/**
 * The validator container, shared with scripts/stack.ts's check before `up` and
 * `preview`: it lives in scripts/validate-payload.ts.
 */
export {
  BASE_IMAGE,
  checkedFiles,
  checkScript,
  ensureValidatorImage,
  q,
  recipeHash,
  RECIPE_DIR,
  requireDocker,
  validateInContainer,
  validateTrees,
  ValidationRun,
  VALIDATOR_IMAGE,
} from "../../scripts/validate-payload";
