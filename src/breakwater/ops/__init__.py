"""Operations on a region's store: what an operator runs while its nodes are stopped."""
