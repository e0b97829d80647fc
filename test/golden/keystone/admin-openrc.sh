# Rendered by stackha: the admin of this deployment, through the VIP. Holds a password: mode 0600.
# Usage: . /etc/stackha/demo/admin-openrc.sh
for key in $( set | awk '{FS="="}  /^OS_/ {print $1}' ); do unset $key ; done
export OS_AUTH_URL='http://198.18.0.10:5000'
export OS_USERNAME='admin'
export OS_PASSWORD='fake-keystone-admin-password'
export OS_PROJECT_NAME='admin'
export OS_USER_DOMAIN_NAME='Default'
export OS_PROJECT_DOMAIN_NAME='Default'
export OS_REGION_NAME='RegionOne'
export OS_INTERFACE='internal'
export OS_ENDPOINT_TYPE='internalURL'
export OS_IDENTITY_API_VERSION='3'
