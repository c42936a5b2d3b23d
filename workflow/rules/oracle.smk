# Stage 'oracle': rules added by its issue. Add this stage's final outputs to EXTRA_TARGETS.
