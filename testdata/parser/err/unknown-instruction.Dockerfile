FROM alpine
  RUNN echo
