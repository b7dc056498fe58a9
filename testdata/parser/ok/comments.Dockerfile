# about the base
FROM alpine # not a comment: part of the arguments
    # indented comment
RUN echo one \
# a comment line inside a continuation is dropped
    two \
    # so is an indented one
    three
